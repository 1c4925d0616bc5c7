// tests/web/serve.mjs: starts a real `moepool serve` on a free loopback port for a test file and
// stops it afterwards. MOEPOOL (the binary) and MOEPOOL_MODEL (a GGUF file) come from ctest.
import { spawn } from 'node:child_process';
import net from 'node:net';

export const MOEPOOL = process.env.MOEPOOL;
export const MODEL = process.env.MOEPOOL_MODEL;

// A port the kernel just handed out and released: free unless another process takes it in the
// moment before the server binds (then the server exits and start() says so).
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts the server (on MOEPOOL_MODEL unless told) with extra arguments; resolves once GET /health answers 200. The wait is
// bounded by the number of polls, not asserted as a speed: loading a tiny model takes well under
// a second, but an ASan build on a busy 2-core machine can be far slower.
export async function startServer(args = [], model = MODEL) {
  if (!MOEPOOL || !model) throw new Error('set MOEPOOL and MOEPOOL_MODEL');
  const port = await freePort();
  // One thread: the tiny test model needs no more, and CI's 2 cores run two tests at once.
  const argv = ['serve', '-m', model, '--host', '127.0.0.1', '--port', String(port), '-t', '1',
                ...args];
  const proc = spawn(MOEPOOL, argv, { stdio: ['ignore', 'inherit', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => {
    stderr += d;
    process.stderr.write(d);
  });
  let exited = null;
  proc.on('exit', (code, signal) => { exited = { code, signal }; });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 1200 && !exited; i++) {
    try {
      const r = await fetch(base + '/health');
      if (r.ok || r.status === 401) break; // 401: up, but /health wants the API key
    } catch (e) { /* not listening yet */ }
    await sleep(100);
  }
  if (exited) throw new Error(`moepool serve exited (${JSON.stringify(exited)}): ${stderr}`);
  return {
    base,
    url: base + '/v1',
    proc,
    get exited() { return exited; },
    // SIGTERM, then the exit status: a clean shutdown is part of what the tests check.
    async stop() {
      if (exited) return exited;
      const done = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30000);
      const result = await done;
      clearTimeout(timer);
      return result;
    },
  };
}
