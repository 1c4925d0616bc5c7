// The chat page's logic: OpenAI chat completions streamed over Server-Sent Events, parsed from a
// fetch() body so a Stop button can abort the request (EventSource cannot POST or abort).
// Model output only ever goes into textContent: it is shown as text, never parsed as HTML.
'use strict';

const $ = (id) => document.getElementById(id);

const chat = {
  history: [],      // the conversation sent with each request (system prompt added per request)
  controller: null, // AbortController of the request in flight
  model: null,      // id from GET /v1/models
};

function setStatus(text) {
  $('status').textContent = text || '';
}

function requestHeaders() {
  const headers = { 'Content-Type': 'application/json' };
  const key = $('api-key').value.trim();
  if (key) headers.Authorization = 'Bearer ' + key;
  return headers;
}

// The error message of a failed response: OpenAI's error object if the body is one.
async function errorMessage(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && body.error && body.error.message) return `HTTP ${response.status}: ${body.error.message}`;
  } catch (e) { /* not JSON: show the text */ }
  return `HTTP ${response.status}: ${text.slice(0, 300) || response.statusText}`;
}

async function loadModel() {
  try {
    const response = await fetch('v1/models', { headers: requestHeaders() });
    if (!response.ok) throw new Error(await errorMessage(response));
    const body = await response.json();
    chat.model = body.data && body.data.length ? body.data[0].id : null;
    $('model').textContent = chat.model || '(no model)';
    setStatus('');
  } catch (e) {
    $('model').textContent = '?';
    setStatus('cannot list models: ' + e.message);
  }
}

// Sampling settings: a field left empty is not sent, so the server's default applies.
const NUMBER_FIELDS = ['temperature', 'top_p', 'top_k', 'min_p', 'max_tokens', 'seed',
                       'presence_penalty', 'frequency_penalty'];

function requestBody() {
  const messages = [];
  const system = $('system').value;
  if (system.trim()) messages.push({ role: 'system', content: system });
  messages.push(...chat.history);
  const body = { messages, stream: true, stream_options: { include_usage: true } };
  if (chat.model) body.model = chat.model;
  for (const name of NUMBER_FIELDS) {
    const value = $(name).value.trim();
    if (value === '') continue;
    const number = Number(value);
    if (!Number.isFinite(number)) throw new Error(`${name} is not a number`);
    body[name] = number;
  }
  const stop = $('stop-strings').value.split('\n').filter((s) => s.length > 0);
  if (stop.length) body.stop = stop;
  const tools = $('tools').value.trim();
  if (tools) {
    try {
      body.tools = JSON.parse(tools);
    } catch (e) {
      throw new Error('tools: not valid JSON: ' + e.message);
    }
    if (!Array.isArray(body.tools)) throw new Error('tools: expected a JSON array');
  }
  return body;
}

// Yields the data of each Server-Sent Event in a fetch response body.
async function* sseData(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer = (buffer + decoder.decode(value, { stream: true })).replace(/\r\n/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split('\n').filter((line) => line.startsWith('data:'))
                        .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5));
      if (data.length) yield data.join('\n');
    }
  }
}

function addMessage(role, text) {
  const el = document.createElement('div');
  el.className = 'msg ' + role;
  const label = document.createElement('div');
  label.className = 'role';
  label.textContent = role;
  const content = document.createElement('div');
  content.className = 'content';
  content.textContent = text;
  el.append(label, content);
  $('messages').append(el);
  el.scrollIntoView({ block: 'end' });
  return { el, content };
}

function addLine(view, className, text) {
  let line = view.el.querySelector(':scope > .' + className);
  if (!line) {
    line = document.createElement('div');
    line.className = className;
    view.el.append(line);
  }
  line.textContent = text;
}

// Streamed tool calls arrive in pieces keyed by index: the first piece has id and name, later
// ones append to the arguments string.
function mergeToolCalls(calls, deltas) {
  for (const d of deltas) {
    const i = Number.isInteger(d.index) ? d.index : calls.length;
    const call = calls[i] || (calls[i] = { id: '', type: 'function', function: { name: '', arguments: '' } });
    if (d.id) call.id = d.id;
    if (d.function && d.function.name) call.function.name += d.function.name;
    if (d.function && d.function.arguments) call.function.arguments += d.function.arguments;
  }
}

function renderToolCalls(view, calls) {
  view.el.querySelectorAll(':scope > .tool-call').forEach((el) => el.remove());
  const els = [];
  for (const call of calls) {
    if (!call) continue;
    let args = call.function.arguments;
    try {
      args = JSON.stringify(JSON.parse(args), null, 2);
    } catch (e) { /* still streaming, or not JSON: show as received */ }
    const el = document.createElement('div');
    el.className = 'tool-call';
    el.dataset.name = call.function.name;
    el.textContent = `tool call ${call.function.name}(${args})`;
    els.push(el);
  }
  view.content.after(...els); // under the text, above the stats line
}

// Time to first token, and the decode rate after it (tokens from usage when the server sends
// it, else one per streamed chunk).
function statsText(timing, tokens) {
  const parts = [];
  if (timing.first !== null) parts.push(`TTFT ${Math.round(timing.first - timing.start)} ms`);
  parts.push(`${tokens} token${tokens === 1 ? '' : 's'}`);
  if (tokens > 1 && timing.last > timing.first)
    parts.push(`${((tokens - 1) * 1000 / (timing.last - timing.first)).toFixed(1)} tok/s`);
  return parts.join(' · ');
}

function setBusy(busy) {
  $('send').disabled = busy;
  $('stop').disabled = !busy;
}

async function send() {
  const text = $('input').value;
  if (!text.trim() || chat.controller) return;
  let body;
  chat.history.push({ role: 'user', content: text });
  try {
    body = requestBody();
  } catch (e) {
    chat.history.pop();
    setStatus(e.message);
    return;
  }
  setStatus('');
  addMessage('user', text);
  $('input').value = '';
  const view = addMessage('assistant', '');
  view.el.dataset.state = 'streaming';
  const controller = new AbortController();
  chat.controller = controller;
  setBusy(true);

  const timing = { start: performance.now(), first: null, last: null };
  let content = '', chunks = 0, usage = null, finish = null;
  const toolCalls = [];
  // A fast model streams thousands of tokens a second: the text, stats and scroll position are
  // redrawn at most once per frame, not once per token (each redraw is a layout).
  let drawPending = false;
  const draw = () => {
    drawPending = false;
    view.content.textContent = content;
    addLine(view, 'stats', statsText(timing, usage ? usage.completion_tokens : chunks));
    view.el.scrollIntoView({ block: 'end' });
  };
  const scheduleDraw = () => {
    if (!drawPending) { drawPending = true; requestAnimationFrame(draw); }
  };
  try {
    const response = await fetch('v1/chat/completions', {
      method: 'POST', headers: requestHeaders(), body: JSON.stringify(body), signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    for await (const data of sseData(response)) {
      if (data === '[DONE]') break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message || JSON.stringify(chunk.error));
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices || []) {
        const delta = choice.delta || {};
        if (delta.content || delta.tool_calls) {
          timing.last = performance.now();
          if (timing.first === null) timing.first = timing.last;
          chunks++;
        }
        if (delta.content) content += delta.content;
        if (delta.tool_calls) {
          mergeToolCalls(toolCalls, delta.tool_calls);
          renderToolCalls(view, toolCalls);
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
      scheduleDraw();
    }
    draw();
    view.el.dataset.state = 'done';
    if (finish) view.el.dataset.finish = finish;
    if (finish === 'length') addLine(view, 'stats', statsText(timing, usage ? usage.completion_tokens : chunks) + ' · max tokens reached');
  } catch (e) {
    if (chunks) draw();
    if (e.name === 'AbortError') {
      view.el.dataset.state = 'stopped';
      addLine(view, 'stats', statsText(timing, chunks) + ' · stopped');
    } else {
      view.el.dataset.state = 'error';
      addLine(view, 'error', e.message);
    }
  } finally {
    if (chat.controller === controller) {
      chat.controller = null;
      setBusy(false);
    }
  }
  // What was shown stays in the conversation, stopped or not. Tool calls are not replayed: the
  // page has no way to run a tool and send its result.
  if (view.el.isConnected) chat.history.push({ role: 'assistant', content });
}

function stop() {
  if (chat.controller) chat.controller.abort();
}

function newChat() {
  stop();
  chat.history = [];
  $('messages').replaceChildren();
  $('input').focus();
}

document.addEventListener('DOMContentLoaded', () => {
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  $('input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') stop();
  });
  $('stop').addEventListener('click', stop);
  $('new-chat').addEventListener('click', newChat);
  $('api-key').addEventListener('change', loadModel);
  loadModel();
  $('input').focus();
});
