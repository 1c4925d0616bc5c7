// tests/web/loadtest.test.mjs: the load-test benchmark (tools/loadtest/loadtest.mjs) still runs
// against a real `moepool serve`: every request completes and the report has its fields. Its
// figures are not checked: speed belongs to the benchmark, not to tests.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startServer } from './serve.mjs';

let server;
before(async () => { server = await startServer(['-np', '4']); });
after(async () => { await server.stop(); });

test('loadtest --json at concurrency 1 and 4', async () => {
  // run_node_tests.sh copies loadtest.mjs beside these tests and node_modules.
  const { stdout } = await promisify(execFile)(process.execPath, [
    'loadtest.mjs', '--url', server.url, '--concurrency', '1,4', '--requests', '2',
    '--max-tokens', '8', '--json']);
  const report = JSON.parse(stdout);
  assert.deepEqual(report.levels.map((l) => l.concurrency), [1, 4]);
  for (const level of report.levels) {
    assert.equal(level.errors, 0, level.first_error);
    assert.equal(level.requests, 2 * level.concurrency);
    assert.ok(level.tokens > 0 && level.tokens <= 8 * level.requests);
    for (const key of ['tok_per_s', 'seconds']) assert.ok(level[key] > 0, key);
    assert.ok(level.ttft_ms.p50 > 0 && level.ttft_ms.p99 >= level.ttft_ms.p50);
  }
});
