#!/usr/bin/env node
// tools/loadtest/loadtest.mjs: a load-test benchmark of an OpenAI-compatible server (moepool
// serve) through the official openai client. For each concurrency level (default 1, 8, 32) it
// runs that many clients, each sending --requests streaming chats one after another, and prints
// one line per level: aggregate tok/s, time to first token p50/p99, inter-token latency p50/p99
// (or all figures as JSON with --json). A benchmark, not a test: it asserts nothing about speed.
// See docs/loadtest.md.
import OpenAI from 'openai';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

const USAGE = `usage: node loadtest.mjs [--url http://127.0.0.1:8080/v1] [--concurrency 1,8,32]
       [--requests N] [--max-tokens N] [--temperature T] [--model ID] [--api-key KEY]
       [--time-limit SECONDS] [--allow-remote] [--json]`;

// Prompts rotate over the clients so concurrent requests are not all the same text.
const PROMPTS = [
  'Write a short poem about the sea.',
  'Explain what a mixture-of-experts model is.',
  'List five uses for a paperclip.',
  'Tell me a story about a robot who learns to paint.',
  'What should I pack for a weekend hike?',
  'Describe the taste of a lemon to someone who never had one.',
  'Give me three tips for writing clear code.',
  'Why is the sky blue?',
];

// Nearest-rank percentile of an unsorted array (null when empty).
export function percentile(values, p) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

// One streaming chat: when its first token arrived, the gaps between later tokens, how many.
async function timedChat(client, params, deadline) {
  const start = performance.now();
  const stream = await client.chat.completions.create({
    ...params, stream: true, stream_options: { include_usage: true } });
  let first = null, last = null, chunks = 0, tokens = null;
  const gaps = [];
  for await (const chunk of stream) {
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
    const delta = chunk.choices[0]?.delta;
    if (!delta || !(delta.content || delta.tool_calls)) continue;
    const now = performance.now();
    if (first === null) first = now;
    else gaps.push(now - last);
    last = now;
    chunks++;
    if (now > deadline) {
      stream.controller.abort();
      break;
    }
  }
  // Without usage (or when cut short), count one token per content chunk: moepool sends one
  // chunk per token, except where it holds back bytes of an incomplete UTF-8 character or a
  // possible stop string.
  return { ttft: first === null ? null : first - start, gaps, tokens: tokens ?? chunks };
}

// `concurrency` clients, each sending `requests` chats in turn; all timings in milliseconds.
export async function runLevel(client, { concurrency, requests, model, maxTokens, temperature, timeLimitS }) {
  const start = performance.now();
  const deadline = start + timeLimitS * 1000;
  const ttfts = [], gaps = [], errors = [];
  let tokens = 0, done = 0;
  const worker = async (w) => {
    for (let r = 0; r < requests && performance.now() < deadline; r++) {
      const prompt = PROMPTS[(w * requests + r) % PROMPTS.length];
      try {
        const res = await timedChat(client, {
          model, messages: [{ role: 'user', content: prompt }], max_tokens: maxTokens, temperature,
        }, deadline);
        if (res.ttft !== null) ttfts.push(res.ttft);
        gaps.push(...res.gaps);
        tokens += res.tokens;
        done++;
      } catch (e) {
        errors.push(e.message);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const seconds = (performance.now() - start) / 1000;
  return {
    concurrency, requests: done, errors: errors.length, first_error: errors[0] ?? null,
    tokens, seconds, tok_per_s: tokens / seconds,
    ttft_ms: { p50: percentile(ttfts, 50), p99: percentile(ttfts, 99) },
    itl_ms: { p50: percentile(gaps, 50), p99: percentile(gaps, 99) },
  };
}

const ms = (v) => (v === null ? '-' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(0)} ms`);

export function formatLevel(r) {
  return `concurrency ${String(r.concurrency).padStart(2)}: ${r.requests} requests, ${r.errors} errors, ` +
    `${r.tokens} tokens in ${r.seconds.toFixed(1)} s = ${r.tok_per_s.toFixed(1)} tok/s aggregate; ` +
    `TTFT p50 ${ms(r.ttft_ms.p50)} p99 ${ms(r.ttft_ms.p99)}; ` +
    `inter-token p50 ${ms(r.itl_ms.p50)} p99 ${ms(r.itl_ms.p99)}`;
}

// Load goes only to this machine unless asked: a benchmark aimed at someone else's server by a
// typo is a denial of service.
function isLoopback(url) {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function positiveInt(name, text) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: expected a positive integer, got '${text}'`);
  return n;
}

async function main() {
  const { values } = parseArgs({ options: {
    url: { type: 'string', default: 'http://127.0.0.1:8080/v1' },
    concurrency: { type: 'string', default: '1,8,32' },
    requests: { type: 'string', default: '2' },
    'max-tokens': { type: 'string', default: '32' },
    temperature: { type: 'string', default: '0' },
    model: { type: 'string' },
    'api-key': { type: 'string', default: process.env.OPENAI_API_KEY ?? 'none' },
    'time-limit': { type: 'string', default: '600' },
    'allow-remote': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  } });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const levels = values.concurrency.split(',').map((c) => positiveInt('concurrency', c));
  const requests = positiveInt('requests', values.requests);
  const maxTokens = positiveInt('max-tokens', values['max-tokens']);
  const timeLimitS = positiveInt('time-limit', values['time-limit']);
  const temperature = Number(values.temperature);
  if (!Number.isFinite(temperature) || temperature < 0) throw new Error('--temperature: expected a number >= 0');
  if (!values['allow-remote'] && !isLoopback(values.url))
    throw new Error(`${values.url} is not on this machine (add --allow-remote if it is yours)`);

  const client = new OpenAI({ baseURL: values.url, apiKey: values['api-key'], maxRetries: 0,
                              timeout: timeLimitS * 1000 });
  const model = values.model ?? (await client.models.list()).data[0].id;
  const results = [];
  for (const concurrency of levels) {
    const r = await runLevel(client, { concurrency, requests, model, maxTokens, temperature, timeLimitS });
    results.push(r);
    if (!values.json) console.log(formatLevel(r) + (r.first_error ? ` (first error: ${r.first_error})` : ''));
  }
  if (values.json)
    console.log(JSON.stringify({ url: values.url, model, max_tokens: maxTokens, requests_per_client: requests,
                                 temperature, levels: results }, null, 2));
  return results.some((r) => r.errors) ? 1 : 0;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then((code) => { process.exitCode = code; }, (e) => {
    console.error(`loadtest: ${e.message}`);
    process.exitCode = 2;
  });
}
