// SPDX-License-Identifier: Apache-2.0
// A slowloris in a child process (the test process alone may not hold
// 20,000 sockets): opens COUNT connections to HOST:PORT from source
// addresses FIRST..FIRST+ADDRS-1 in 127.0.x.y, sends the start of an upgrade
// request and then one byte every TRICKLE_MS, and reopens a connection the
// server closed after REOPEN_MS (plus jitter). Prints a JSON line of counts
// every second; exits on SIGTERM.
import net from 'node:net';

const env = (k, d) => Number(process.env[k] ?? d);
const HOST = process.env.HOST || '127.0.0.1';
const PORT = env('PORT', 4000);
const COUNT = env('COUNT', 10000);
const FIRST = env('FIRST', 256);
const ADDRS = env('ADDRS', 100);
const TRICKLE_MS = env('TRICKLE_MS', 5000);
const REOPEN_MS = env('REOPEN_MS', 5000);
const CONCURRENCY = 256; // connects in flight

const addr = (i) => { const n = FIRST + (i % ADDRS); return `127.0.${n >> 8}.${n & 255}`; };
let open = 0, opened = 0, closed = 0, failed = 0, inflight = 0, stopping = false;
const queue = [];
const socks = new Set();

function connect(i) {
  inflight++;
  const s = net.connect({ host: HOST, port: PORT, localAddress: addr(i) });
  let up = false;
  socks.add(s);
  s.setNoDelay(true);
  s.on('error', () => {});
  s.on('connect', () => {
    up = true; open++; opened++; inflight--; pump();
    s.write('GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    s.timer = setInterval(() => s.write('x'), TRICKLE_MS + Math.floor(Math.random() * 500));
  });
  s.on('close', () => {
    socks.delete(s);
    clearInterval(s.timer);
    if (up) { open--; closed++; } else { failed++; inflight--; pump(); }
    if (!stopping) setTimeout(() => { queue.push(i); pump(); }, REOPEN_MS + Math.floor(Math.random() * REOPEN_MS));
  });
}

function pump() {
  while (!stopping && inflight < CONCURRENCY && queue.length) connect(queue.shift());
}

for (let i = 0; i < COUNT; i++) queue.push(i);
pump();
const report = setInterval(() => {
  process.stdout.write(`${JSON.stringify({ open, opened, closed, failed })}\n`);
}, 1000);
process.on('SIGTERM', () => {
  stopping = true;
  clearInterval(report);
  for (const s of socks) { clearInterval(s.timer); s.destroy(); }
  process.exit(0);
});
