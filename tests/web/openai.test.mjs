// tests/web/openai.test.mjs: `moepool serve` driven by the official openai npm client, as people
// will use it: chat (plain and streamed), a tool conversation, completions, models, errors as the
// client's error classes. Concurrency and aborts: concurrency.test.mjs; tool calls made by the
// model: tools.test.mjs. Run by tests/web/run_node_tests.sh (ctest).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer } from './serve.mjs';

const CTX = 512; // small, so an oversized prompt is cheap to build
let server, client, model;

before(async () => {
  server = await startServer(['-np', '32', '-c', String(CTX)]);
  // maxRetries 0: a retried request would hide the status the server sent.
  client = new OpenAI({ baseURL: server.url, apiKey: 'unused', maxRetries: 0, timeout: 600000 });
  const models = await client.models.list();
  model = models.data[0].id;
});

after(async () => {
  const exit = await server.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, 'server did not shut down cleanly on SIGTERM');
});

const greedy = { temperature: 0, max_tokens: 24 };
const ask = (text) => [{ role: 'user', content: text }];

async function streamText(params, onChunk) {
  const stream = await client.chat.completions.create({ model, ...params, stream: true });
  let text = '', finish = null, usage = null;
  for await (const chunk of stream) {
    if (onChunk) onChunk(chunk, stream);
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      text += choice.delta.content ?? '';
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  return { text, finish, usage };
}

test('models: the served model is listed', async () => {
  const models = await client.models.list();
  assert.ok(models.data.length >= 1);
  for (const m of models.data) {
    assert.equal(m.object, 'model');
    assert.equal(typeof m.id, 'string');
    assert.ok(m.id.length > 0);
  }
});

test('chat: a greedy reply with usage', async () => {
  const r = await client.chat.completions.create({ model, messages: ask('Hello!'), ...greedy });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices.length, 1);
  const [choice] = r.choices;
  assert.equal(choice.message.role, 'assistant');
  assert.equal(typeof choice.message.content, 'string');
  assert.ok(['stop', 'length'].includes(choice.finish_reason), choice.finish_reason);
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= greedy.max_tokens);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  // Greedy is deterministic: the same request gives the same reply.
  const again = await client.chat.completions.create({ model, messages: ask('Hello!'), ...greedy });
  assert.equal(again.choices[0].message.content, choice.message.content);
});

test('chat: max_completion_tokens bounds the reply like max_tokens', async () => {
  const r = await client.chat.completions.create({
    model, messages: ask('Count with me'), temperature: 0, max_completion_tokens: 3 });
  assert.ok(r.usage.completion_tokens <= 3);
  if (r.usage.completion_tokens === 3) assert.equal(r.choices[0].finish_reason, 'length');
});

test('streaming: chunks add up to the non-streamed reply, then usage', async () => {
  const messages = [{ role: 'system', content: 'You are terse.' }, ...ask('Tell me a story.')];
  const plain = await client.chat.completions.create({ model, messages, ...greedy });
  let chunks = 0, lastHadChoices = true;
  const s = await streamText({ messages, ...greedy, stream_options: { include_usage: true } },
    (chunk) => {
      chunks++;
      assert.equal(chunk.object, 'chat.completion.chunk');
      lastHadChoices = chunk.choices.length > 0;
    });
  assert.equal(s.text, plain.choices[0].message.content);
  assert.equal(s.finish, plain.choices[0].finish_reason);
  assert.ok(chunks >= 2);
  // include_usage: a final chunk with empty choices carries the usage (OpenAI's format).
  assert.equal(lastHadChoices, false);
  assert.deepEqual(s.usage, plain.usage);
});

test('sampling parameters are accepted and seeded sampling repeats', async () => {
  const params = { messages: ask('Pick a word.'), max_tokens: 12, temperature: 0.9, top_p: 0.9,
                   top_k: 20, min_p: 0.02, presence_penalty: 0.5, frequency_penalty: 0.3, seed: 7 };
  const a = await client.chat.completions.create({ model, ...params });
  const b = await client.chat.completions.create({ model, ...params });
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
});

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

test('tools: a conversation with a tool call and its result is accepted', async () => {
  const messages = [
    ...ask('What is the weather in Paris?'),
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function',
      function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
    { role: 'tool', tool_call_id: 'call_1', content: '{"temperature_c": 18, "sky": "clear"}' },
  ];
  // Qwen3's template renders the tools, the call and the result (tool calls made by a model are
  // tested in tools.test.mjs).
  const r = await client.chat.completions.create({ model, messages, tools: [weatherTool], ...greedy });
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.ok(r.usage.prompt_tokens > 0);
});

test('completions: plain and streamed agree', async () => {
  const params = { model, prompt: 'Once upon a time', max_tokens: 16, temperature: 0 };
  const r = await client.completions.create(params);
  assert.equal(r.object, 'text_completion');
  assert.equal(typeof r.choices[0].text, 'string');
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 16);
  let text = '';
  for await (const chunk of await client.completions.create({ ...params, stream: true }))
    text += chunk.choices[0]?.text ?? '';
  assert.equal(text, r.choices[0].text);
});

test('errors: the client raises its own error classes with OpenAI error objects', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: ask('hi'), max_tokens: 1 }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && /model/i.test(e.message));
  // Wrong types: messages must be an array of message objects.
  await assert.rejects(
    client.chat.completions.create({ model, messages: 'hi', max_tokens: 1 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && typeof e.error?.message === 'string');
  await assert.rejects(
    client.chat.completions.create({ model, messages: ask('hi'), max_tokens: 'many' }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400);
  await assert.rejects(
    client.chat.completions.create({ model, messages: ask('hi'), temperature: -1 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400);
  // A prompt longer than the context: 400 naming the context, not a truncated answer.
  await assert.rejects(
    client.chat.completions.create({ model, messages: ask('word '.repeat(CTX * 2)), max_tokens: 1 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && /context/i.test(e.message));
});

test('errors: malformed JSON gets a 400 error object (the client cannot send it: raw fetch)', async () => {
  const r = await fetch(server.url + '/chat/completions', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"model": ' });
  assert.equal(r.status, 400);
  const body = await r.json();
  assert.equal(typeof body.error.message, 'string');
  assert.equal(typeof body.error.type, 'string');
});
