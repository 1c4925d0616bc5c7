// tests/web/apikey.test.mjs: `moepool serve --api-key` refuses requests without the key (401 as
// the openai client's AuthenticationError) and serves those that bear it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer } from './serve.mjs';

const KEY = 'sk-moepool-test-key';
let server;

before(async () => { server = await startServer(['--api-key', KEY, '-np', '2']); });
after(async () => { await server.stop(); });

const clientWith = (apiKey) => new OpenAI({ baseURL: server.url, apiKey, maxRetries: 0 });

test('a wrong or missing key gets 401 AuthenticationError', async () => {
  await assert.rejects(clientWith('sk-wrong').models.list(),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  await assert.rejects(
    clientWith('sk-wrong').chat.completions.create({
      model: 'any', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  const r = await fetch(server.url + '/models');
  assert.equal(r.status, 401);
  assert.equal(typeof (await r.json()).error.message, 'string');
});

test('the right key is served', async () => {
  const client = clientWith(KEY);
  const models = await client.models.list();
  const r = await client.chat.completions.create({
    model: models.data[0].id, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, temperature: 0 });
  assert.equal(r.choices[0].message.role, 'assistant');
});
