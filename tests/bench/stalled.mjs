#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Memory of a node whose subscribers stop reading while their topic floods:
// STALLED raw WebSocket subscribers join one topic and never read again, one
// phoenix client keeps reading, and a poster sends COMMENTS comments of
// BYTES bytes (durable, then broadcast). Prints the node's peak anonymous
// RSS growth, how many stalled sockets were closed and why, and the peak of
// queued output when the node reports it. Uses the e2e harness (run
// `./dev deps` first).
//   PARLEY_BIN=build/broker/parley node tests/bench/stalled.mjs [--stalled N]
//     [--comments N] [--bytes N] [-- extra serve flags]
import { readFileSync } from 'node:fs';
import {
  BIN, startNode, stopCleanNow, socket, connected, join, wsHandshake, sleep, waitFor,
} from '../e2e/lib.mjs';
import { postMany, uniq } from '../e2e/comments_lib.mjs';

const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? Number(argv[i + 1]) : def; };
const STALLED = opt('stalled', 100), COMMENTS = opt('comments', 15000), BYTES = opt('bytes', 500);
const extra = argv.includes('--') ? argv.slice(argv.indexOf('--') + 1) : [];
const anonKiB = (pid) => Number(/RssAnon:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const assert = { deepEqual: (a, b, m) => { if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(m); } };

const node = await startNode({
  args: ['--rate-limit', '100000000/60', '--max-comment-bytes', String(Math.max(BYTES, 2000)), ...extra],
});
const topic = `comments:${uniq('stalled')}`;
const stalled = [];
for (let i = 0; i < STALLED; i++) {
  const c = await wsHandshake(node, { user: `stalled${i}` });
  c.text(['1', '1', topic, 'phx_join', {}]);
  await c.next((f) => f.opcode === 1 && JSON.parse(f.payload)[1] === '1');
  c.sock.pause();
  stalled.push(c);
}
const reader = socket(node, 'reader');
await connected(reader);
const rch = reader.channel(topic);
let got = 0;
rch.on('new_comment', () => { got++; });
await join(rch);
const poster = socket(node, 'poster');
await connected(poster);
const pch = poster.channel(topic);
await join(pch);
await sleep(500);
const base = anonKiB(node.proc.pid);
let peak = base, queuedPeak = null, sampling = true;
const sampler = (async () => {
  while (sampling) {
    peak = Math.max(peak, anonKiB(node.proc.pid));
    const st = await node.adminJson('/v1/stats');
    if (st.limits) queuedPeak = Math.max(queuedPeak ?? 0, st.limits.queued_bytes);
    await sleep(50);
  }
})();
const t0 = Date.now();
const body = 'b'.repeat(BYTES);
await postMany(pch, COMMENTS, { inFlight: 50, content: (i) => `${i} ${body}`.slice(0, BYTES) });
await waitFor(() => got === COMMENTS, { timeout: 60000, what: `reader got ${got}` });
const took = Date.now() - t0;
await sleep(500);
sampling = false;
await sampler;
const st = await node.adminJson('/v1/stats');
console.log(JSON.stringify({
  binary: BIN, flags: extra, stalled: STALLED, comments: COMMENTS, bytes: BYTES, ms: took,
  anon_rss_base_kib: base, anon_rss_growth_kib: peak - base, queued_peak_bytes: queuedPeak,
  slow_closed: st.sockets.slow_closed, budget_closed: st.limits?.budget_closed ?? null, reader_got: got,
}));
for (const c of stalled) c.sock.destroy();
reader.disconnect();
poster.disconnect();
await stopCleanNow(node, assert);
