#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Comment replication figures (docs/benchmarks.md, "Comment replication"):
//  lag      three nodes, RATE comments/s in all (a third posted on each node
//           by a phoenix client at a fixed pace) for SECONDS, with
//           --ack-replicas 1 and then 2: ack latency seen by the posters
//           (push -> ok) and replication delay (acceptance on the origin ->
//           durable on each peer, parley_replication_delay_seconds summed
//           over the three nodes, percentiles interpolated in its buckets).
//  catchup  a node whose earlier life wrote COUNT comments (tests/tools/
//           fill_store), and a second node joining it: time until the
//           joiner's /readyz is 200, comments and MB per second, and what
//           clients on both nodes saw meanwhile: heartbeat round trips every
//           20 ms (max, p99) and the longest gap between two heartbeats
//           answered (a stalled loop), plus each node's loop-lag histogram.
// Uses the e2e harness (run `./dev deps` first) and the release build:
//   PARLEY_BIN=build/broker/parley node tests/bench/replication.mjs \
//     [--only lag|catchup] [--rate 1000] [--seconds 30] [--count 1000000]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  BIN, startNode, socket, connected, join, httpGet, sleep, waitFor,
} from '../e2e/lib.mjs';
import { parseExposition } from '../e2e/prom.mjs';

const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : def; };
const ONLY = opt('only', 'lag,catchup').split(',');
const RATE = Number(opt('rate', 1000)), SECONDS = Number(opt('seconds', 30));
const COUNT = Number(opt('count', 1000000));
const FILL = path.resolve(path.dirname(BIN), '../tests/tools/fill_store');
const ARGS = ['--rate-limit', '1000000000/1', '--log-level', 'warn'];

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const ms = (x) => (x === undefined ? 'n/a' : x.toFixed(1));

async function cluster(k, extra) {
  const nodes = [await startNode({ host: '127.0.0.1', name: 'n1', args: [...ARGS, ...extra] })];
  for (let i = 2; i <= k; i++) {
    nodes.push(await startNode({ host: `127.0.0.${i}`, name: `n${i}`, join: [nodes[0].bus], args: [...ARGS, ...extra] }));
  }
  await waitFor(async () => (await Promise.all(nodes.map((n) => httpGet(`${n.http}/readyz`))))
    .every((r) => r.status === 200), { timeout: 15000, what: 'cluster ready' });
  return nodes;
}

async function stop(nodes) {
  for (const n of nodes) { await n.stop('SIGTERM'); n.cleanup(); }
}

// Posts `rate` comments/s on one node for `seconds`; resolves with the ack
// latencies in ms and the count refused.
async function pace(node, user, rate, seconds) {
  const s = socket(node, user);
  await connected(s);
  const ch = s.channel(`comments:bench-${user}`);
  await join(ch);
  const lat = [];
  let sent = 0, refused = 0, done = 0;
  const t0 = performance.now();
  const total = Math.round(rate * seconds);
  await new Promise((resolve) => {
    const tick = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
      for (; sent < due; sent++) {
        const at = performance.now();
        ch.push('new_comment', { content: `c ${sent}` }, 30000)
          .receive('ok', () => { lat.push(performance.now() - at); if (++done === total) resolve(); })
          .receive('error', () => { refused++; if (++done === total) resolve(); })
          .receive('timeout', () => { refused++; if (++done === total) resolve(); });
      }
      if (sent === total) clearInterval(tick);
    }, 5);
  });
  s.disconnect();
  return { lat, refused, seconds: (performance.now() - t0) / 1000 };
}

// Quantile of a Prometheus histogram (cumulative buckets summed over
// nodes), interpolated linearly inside the bucket, in ms.
function histQuantile(buckets, q) {
  const total = buckets[buckets.length - 1].count;
  const want = q * total;
  let prevLe = 0, prevC = 0;
  for (const b of buckets) {
    if (b.count >= want) {
      if (!Number.isFinite(b.le)) return prevLe * 1000;
      return (prevLe + (b.le - prevLe) * ((want - prevC) / Math.max(1, b.count - prevC))) * 1000;
    }
    prevLe = b.le; prevC = b.count;
  }
  return prevLe * 1000;
}

async function histogram(nodes, name) {
  const sum = new Map();
  for (const n of nodes) {
    const text = await (await fetch(`${n.admin}/metrics`)).text();
    const fam = parseExposition(text).get(name);
    for (const s of (fam ? fam.samples : []).filter((x) => x.name === `${name}_bucket`)) {
      const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
      sum.set(le, (sum.get(le) || 0) + s.value);
    }
  }
  return [...sum.entries()].sort((a, b) => a[0] - b[0]).map(([le, count]) => ({ le, count }));
}

async function lag(k) {
  const nodes = await cluster(3, ['--ack-replicas', String(k)]);
  const per = RATE / nodes.length;
  const runs = await Promise.all(nodes.map((n, i) => pace(n, `p${k}${i}`, per, SECONDS)));
  await sleep(1000);
  const lat = runs.flatMap((r) => r.lat);
  const h = await histogram(nodes, 'parley_replication_delay_seconds');
  const copies = h[h.length - 1].count;
  const out = {
    ack_replicas: k, rate: RATE, seconds: SECONDS, acked: lat.length,
    refused: runs.reduce((a, r) => a + r.refused, 0),
    ack_p50: pct(lat, 0.5), ack_p99: pct(lat, 0.99), ack_max: Math.max(...lat),
    copies, repl_p50: histQuantile(h, 0.5), repl_p99: histQuantile(h, 0.99),
    repl_max_bucket: h.find((b) => b.count === copies).le * 1000,
  };
  await stop(nodes);
  return out;
}

// Heartbeats every 20 ms; returns a stop() giving round trips and the
// longest time between two replies.
function heartbeats(node) {
  const s = socket(node, `hb-${node.name}`, { heartbeatIntervalMs: 3600000 });
  const rtts = [];
  let last = performance.now(), gap = 0, stopped = false;
  const loop = (async () => {
    await connected(s);
    last = performance.now();
    while (!stopped) {
      const at = performance.now();
      await new Promise((resolve) => {
        const t = setTimeout(resolve, 5000);
        s.ping(() => { clearTimeout(t); const now = performance.now(); rtts.push(now - at); gap = Math.max(gap, now - last); last = now; resolve(); });
      });
      await sleep(20);
    }
  })();
  return async () => { stopped = true; await loop; s.disconnect(); return { rtts, gap }; };
}

async function catchup() {
  const data = mkdtempSync(path.join(os.tmpdir(), 'parley-bench-fill-'));
  const tf = performance.now();
  execFileSync(FILL, [data, 'n1~0000beef', String(COUNT), '1000']);
  const fillS = (performance.now() - tf) / 1000;
  const n1 = await startNode({ host: '127.0.0.1', name: 'n1', data, args: ARGS });
  await waitFor(async () => (await httpGet(`${n1.http}/readyz`)).status === 200, { what: 'n1 ready' });
  const hb1 = heartbeats(n1);
  await sleep(500);
  const t0 = performance.now();
  const n2 = await startNode({ host: '127.0.0.2', name: 'n2', join: [n1.bus], args: [...ARGS, '--catchup-timeout', '3600'] });
  const hb2 = heartbeats(n2);
  await waitFor(async () => (await httpGet(`${n2.http}/readyz`)).status === 200,
    { timeout: 3600000, interval: 50, what: 'n2 caught up' });
  const took = (performance.now() - t0) / 1000;
  const [h1, h2] = [await hb1(), await hb2()];
  const r = await n2.adminJson('/v1/replication');
  const r1 = await n1.adminJson('/v1/replication');
  const lagMax = async (n) => { const h = await histogram([n], 'parley_loop_lag_seconds'); const top = h[h.length - 1].count; return h.find((b) => b.count === top).le * 1000; };
  const out = {
    comments: COUNT, fill_seconds: fillS, seconds: took,
    per_second: r.counters.catchup_comments / took,
    mb: r.counters.catchup_bytes / 1e6, mb_per_second: r.counters.catchup_bytes / 1e6 / took,
    fetched: r.counters.catchup_comments, chunks: r.counters.pulls,
    joiner_bus_bytes: r.counters.bus_bytes_in, joiner_direct_bytes: r.counters.direct_bytes_in,
    server_direct_bytes: r1.counters.direct_bytes_in,
    hb_server: { n: h1.rtts.length, p99: pct(h1.rtts, 0.99), max: Math.max(...h1.rtts), gap: h1.gap },
    hb_joiner: { n: h2.rtts.length, p99: pct(h2.rtts, 0.99), max: Math.max(...h2.rtts), gap: h2.gap },
    loop_lag_max_bucket_ms: { server: await lagMax(n1), joiner: await lagMax(n2) },
  };
  await stop([n1, n2]);
  rmSync(data, { recursive: true, force: true });
  return out;
}

const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
console.log(`# ${os.cpus().length} cores, ${os.cpus()[0].model}, load ${load()}, ${new Date().toISOString()}`);
if (ONLY.includes('lag')) {
  for (const k of [1, 2]) {
    const r = await lag(k);
    console.log(`lag ack_replicas=${k}: ${r.acked} acked (${r.refused} refused) at ${r.rate}/s for ${r.seconds} s; ` +
      `ack p50 ${ms(r.ack_p50)} p99 ${ms(r.ack_p99)} max ${ms(r.ack_max)} ms; ` +
      `replication (${r.copies} copies) p50 ${ms(r.repl_p50)} p99 ${ms(r.repl_p99)} ms, all within ${r.repl_max_bucket} ms; load ${load()}`);
    console.log(JSON.stringify(r));
  }
}
if (ONLY.includes('catchup')) {
  const r = await catchup();
  console.log(`catchup: ${r.fetched} comments (${r.mb.toFixed(1)} MB, ${r.chunks} chunks) in ${r.seconds.toFixed(1)} s: ` +
    `${Math.round(r.per_second)} comments/s, ${r.mb_per_second.toFixed(1)} MB/s; heartbeats on the serving node ` +
    `p99 ${ms(r.hb_server.p99)} max ${ms(r.hb_server.max)} ms (longest gap ${ms(r.hb_server.gap)} ms), on the joiner ` +
    `p99 ${ms(r.hb_joiner.p99)} max ${ms(r.hb_joiner.max)} ms (gap ${ms(r.hb_joiner.gap)} ms); load ${load()}`);
  console.log(JSON.stringify(r));
}
process.exit(0);
