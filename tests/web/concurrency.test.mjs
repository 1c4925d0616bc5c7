// tests/web/concurrency.test.mjs: through the openai client, 32 concurrent streaming chats all
// finish with no error and give exactly their solo greedy outputs (batch invariance), and the
// server keeps serving, with unchanged outputs, after clients abort mid-stream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer } from './serve.mjs';

let server, client, model;

before(async () => {
  server = await startServer(['-np', '32']);
  client = new OpenAI({ baseURL: server.url, apiKey: 'unused', maxRetries: 0, timeout: 600000 });
  model = (await client.models.list()).data[0].id;
});

after(async () => {
  const exit = await server.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, 'server did not shut down cleanly on SIGTERM');
});

const greedy = { temperature: 0, max_tokens: 16 };
const ask = (text) => [{ role: 'user', content: text }];

async function streamText(params) {
  const stream = await client.chat.completions.create({ model, ...params, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  return text;
}

// Four prompts, eight streams each, all at once: every stream must finish without error and
// give exactly its prompt's solo greedy output (batch invariance, issue 6).
test('32 concurrent streaming chats finish and equal their solo greedy outputs', async () => {
  const prompts = ['Hi', 'Write a haiku about rain.', 'What is 2+2?', 'List three colours.'];
  const solo = [];
  for (const p of prompts) solo.push(await streamText({ messages: ask(p), ...greedy }));
  const runs = Array.from({ length: 32 }, (_, i) =>
    streamText({ messages: ask(prompts[i % prompts.length]), ...greedy }));
  const results = await Promise.allSettled(runs);
  results.forEach((r, i) => {
    assert.equal(r.status, 'fulfilled', `stream ${i}: ${r.reason}`);
    assert.equal(r.value, solo[i % prompts.length], `stream ${i} differs from solo`);
  });
});

test('the server keeps serving after clients abort mid-stream', async () => {
  const solo = await client.chat.completions.create({ model, messages: ask('Still there?'), ...greedy });
  // Long generations, each abandoned after its first content chunk.
  const aborted = Array.from({ length: 8 }, async () => {
    const stream = await client.chat.completions.create({
      model, messages: ask('Tell me everything.'), temperature: 0, max_tokens: 400, stream: true });
    let got = 0;
    try {
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta?.content && ++got === 1) stream.controller.abort();
      }
    } catch (e) {
      if (!(e instanceof OpenAI.APIUserAbortError) && e.name !== 'AbortError') throw e;
    }
    return got;
  });
  for (const got of await Promise.all(aborted)) assert.ok(got >= 1);
  // A non-streamed request abandoned before its answer, too.
  const controller = new AbortController();
  const pending = client.chat.completions.create(
    { model, messages: ask('Tell me everything.'), temperature: 0, max_tokens: 400 },
    { signal: controller.signal });
  setTimeout(() => controller.abort(), 50);
  await assert.rejects(pending, (e) => e instanceof OpenAI.APIUserAbortError);

  assert.equal(server.exited, null, 'server died');
  const health = await fetch(server.base + '/health');
  assert.equal(health.status, 200);
  // The freed slots serve new requests with unchanged results.
  const after = await client.chat.completions.create({ model, messages: ask('Still there?'), ...greedy });
  assert.equal(after.choices[0].message.content, solo.choices[0].message.content);
});
