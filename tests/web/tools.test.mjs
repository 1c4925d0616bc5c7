// tests/web/tools.test.mjs: tool calls through the openai client. The server runs the model of
// tool_model.py (MOEPOOL_TOOL_MODEL), whose greedy reply to any chat is the LFM2 tool call
// `[find(x=1)]`, so the server's parsing into OpenAI tool_calls is seen end to end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer } from './serve.mjs';

let server, client, model;

before(async () => {
  server = await startServer(['-np', '4'], process.env.MOEPOOL_TOOL_MODEL);
  client = new OpenAI({ baseURL: server.url, apiKey: 'unused', maxRetries: 0 });
  model = (await client.models.list()).data[0].id;
});
after(async () => { await server.stop(); });

const tools = [{
  type: 'function',
  function: {
    name: 'find',
    description: 'Find x',
    parameters: { type: 'object', properties: { x: { type: 'integer' } }, required: ['x'] },
  },
}];
const request = { messages: [{ role: 'user', content: 'Find one.' }], tools, temperature: 0, max_tokens: 32 };

test('a tool call comes back as structured tool_calls', async () => {
  const r = await client.chat.completions.create({ model, ...request });
  const [choice] = r.choices;
  assert.equal(choice.finish_reason, 'tool_calls');
  assert.equal(choice.message.role, 'assistant');
  assert.ok(!choice.message.content, `markup left in content: ${choice.message.content}`);
  assert.equal(choice.message.tool_calls.length, 1);
  const [call] = choice.message.tool_calls;
  assert.equal(call.type, 'function');
  assert.ok(typeof call.id === 'string' && call.id.length > 0);
  assert.equal(call.function.name, 'find');
  assert.deepEqual(JSON.parse(call.function.arguments), { x: 1 });
});

test('streamed, the tool call arrives as tool_calls deltas that add up to the same call', async () => {
  const plain = await client.chat.completions.create({ model, ...request });
  const stream = await client.chat.completions.create({ model, ...request, stream: true });
  const calls = [];
  let finish = null, content = '';
  for await (const chunk of stream) {
    for (const choice of chunk.choices) {
      content += choice.delta.content ?? '';
      for (const d of choice.delta.tool_calls ?? []) {
        const c = calls[d.index] ??= { id: '', name: '', arguments: '' };
        c.id += d.id ?? '';
        c.name += d.function?.name ?? '';
        c.arguments += d.function?.arguments ?? '';
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  assert.equal(finish, 'tool_calls');
  assert.equal(content, '');
  const [want] = plain.choices[0].message.tool_calls;
  assert.equal(calls.length, 1);
  assert.equal(calls[0].name, want.function.name);
  assert.deepEqual(JSON.parse(calls[0].arguments), JSON.parse(want.function.arguments));
  assert.ok(calls[0].id.length > 0);
});

test('the tool result goes back in and the conversation continues', async () => {
  const first = await client.chat.completions.create({ model, ...request });
  const call = first.choices[0].message.tool_calls[0];
  const r = await client.chat.completions.create({
    model, ...request,
    messages: [...request.messages, first.choices[0].message,
               { role: 'tool', tool_call_id: call.id, content: '{"found": true}' }],
  });
  assert.equal(r.choices[0].message.role, 'assistant');
  // The bigram model calls the tool again whatever it is told: still structured.
  assert.equal(r.choices[0].message.tool_calls?.[0]?.function.name, 'find');
});
