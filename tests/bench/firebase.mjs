// SPDX-License-Identifier: Apache-2.0
// Firebase sync benchmark: lag from a comment's acknowledgement to its
// arrival in a fake Firebase (tests/e2e/fake_firebase.mjs, in its own
// process, answering every request after --delay ms), and requests per
// second, at given comment rates spread over a cluster's nodes. Rewrites
// the "## Firebase sync" section of docs/benchmarks.md (--out), unless
// --no-write.
//
//   node tests/bench/firebase.mjs [--build DIR] [--nodes 3] [--rates 1000,5000]
//        [--seconds 10] [--delay 100] [--post-on all|leader] [--conns 24]
//        [--out FILE] [--no-write]
//
// Each rate gets a fresh cluster and fake. Comments go to one topic per
// connection (so each ack and broadcast reaches one socket), round-robin
// over the nodes (--post-on all) or only on the leader (--post-on leader:
// what a cluster without comment replication can sync).
import { spawn, execSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import WebSocket from '../e2e/node_modules/ws/index.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const arg = (n, d) => { const i = process.argv.indexOf(`--${n}`); return i > 0 ? process.argv[i + 1] : d; };
const flag = (n) => process.argv.includes(`--${n}`);
const BUILD = path.resolve(arg('build', path.join(ROOT, 'build')));
const BIN = path.join(BUILD, 'broker/parley');
const NODES = Number(arg('nodes', 3));
const RATES = arg('rates', '1000,5000').split(',').map(Number);
const SECONDS = Number(arg('seconds', 10));
const DELAY = Number(arg('delay', 100));
const POST_ON = arg('post-on', 'all');
const CONNS = Number(arg('conns', 24));
const OUT = arg('out', path.join(ROOT, 'docs/benchmarks.md'));
const SECRET = 'bench-jwt-secret-0123456789abcdef';
const FB_SECRET = 'bench-firebase-secret';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const say = (s) => process.stderr.write(`[firebase bench] ${s}\n`);

function freePort(host) {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, host, () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function token(user) {
  const b = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const h = b({ alg: 'HS256', typ: 'JWT' });
  const p = b({ sub: user, exp: Math.floor(Date.now() / 1000) + 3600 });
  return `${h}.${p}.${createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url')}`;
}

async function waitHttp(url, ms = 15000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try { if ((await fetch(url)).status === 200) return; } catch { /* not up */ }
    await sleep(50);
  }
  throw new Error(`${url} not up`);
}

async function startFake() {
  const port = await freePort('127.0.0.1');
  const p = spawn(process.execPath, [path.join(ROOT, 'tests/e2e/fake_firebase.mjs'), '--port', String(port),
    '--delay', String(DELAY), '--secret', FB_SECRET], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/__stats`);
  return { p, url };
}

async function startNode(i, fbUrl, seed, cmds) {
  const host = `127.0.0.${i}`;
  const [port, admin, bus, direct] = [await freePort(host), await freePort(host), await freePort(host), await freePort(host)];
  const data = mkdtempSync(path.join(os.tmpdir(), 'parley-fbbench-'));
  const args = ['serve', '--listen', `${host}:${port}`, '--admin', `${host}:${admin}`,
    '--cluster-listen', `tcp://${host}:${bus}`, '--advertise', `tcp://${host}:${bus}`,
    '--node-name', `n${i}`, '--data', data, '--rate-limit', '1000000/1',
    '--firebase-url', fbUrl, '--log-level', 'warn',
    ...(seed ? ['--join', seed] : [])];
  if (execSync(`${BIN} serve --help`).toString().includes('cluster-direct-listen')) {
    args.push('--cluster-direct-listen', `tcp://${host}:${direct}`, '--cluster-direct-advertise', `tcp://${host}:${direct}`);
  }
  cmds.push(`PARLEY_JWT_SECRET=… PARLEY_FIREBASE_AUTH=… ${path.relative(ROOT, BIN)} ${args.join(' ')}`);
  const proc = spawn(BIN, args, { env: { ...process.env, PARLEY_JWT_SECRET: SECRET, PARLEY_FIREBASE_AUTH: FB_SECRET },
    stdio: ['ignore', 'ignore', 'pipe'] });
  let logs = '';
  proc.stderr.on('data', (d) => { logs += d; });
  await waitHttp(`http://${host}:${port}/healthz`);
  return { i, host, port, admin: `http://${host}:${admin}`, bus: `tcp://${host}:${bus}`, data, proc, logs: () => logs };
}

async function stopNode(n) {
  n.proc.kill('SIGTERM');
  await new Promise((r) => { if (n.proc.exitCode !== null) r(); else n.proc.on('exit', r); });
  rmSync(n.data, { recursive: true, force: true });
}

// One poster: a raw V2 socket joined to its own topic.
function openPoster(node, k) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${node.host}:${node.port}/socket/websocket?vsn=2.0.0&token=${token(`b${k}`)}`);
    const topic = `comments:fbbench-${k}`;
    const pending = new Map();
    const p = { ws, topic, pending, ref: 1, acks: [], errors: 0 };
    ws.on('message', (d) => {
      const m = JSON.parse(d);
      if (m[3] !== 'phx_reply') return;
      const sent = pending.get(m[1]);
      if (sent === undefined) { if (m[1] === '0') resolve(p); return; }
      pending.delete(m[1]);
      if (m[4].status === 'ok') p.acks.push({ id: m[4].response.id, video: `fbbench-${k}`, at: Date.now() });
      else p.errors++;
    });
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify(['0', '0', topic, 'phx_join', { limit: 1 }])));
  });
}

function pct(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function runRate(rate) {
  const cmds = [];
  const fake = await startFake();
  const nodes = [];
  nodes.push(await startNode(1, fake.url, null, cmds));
  for (let i = 2; i <= NODES; i++) nodes.push(await startNode(i, fake.url, nodes[0].bus, cmds));
  // Wait for one leader everywhere.
  const end = Date.now() + 15000;
  for (;;) {
    const ls = await Promise.all(nodes.map((n) => fetch(`${n.admin}/v1/leader`).then((r) => r.json())));
    if (ls.every((l) => l.leader === 'n1')) break;
    if (Date.now() > end) throw new Error('no leader');
    await sleep(100);
  }
  const targets = POST_ON === 'leader' ? [nodes[0]] : nodes;
  const posters = await Promise.all(Array.from({ length: CONNS }, (_, k) => openPoster(targets[k % targets.length], k)));
  say(`rate ${rate}/s for ${SECONDS} s over ${targets.length} node(s), ${CONNS} sockets, fake answers after ${DELAY} ms`);
  const t0 = Date.now();
  let sent = 0;
  const cpu0 = nodes.map((n) => cpuOf(n.proc.pid));
  await new Promise((resolve) => {
    const tick = setInterval(() => {
      const due = Math.floor(((Date.now() - t0) / 1000) * rate);
      while (sent < due) {
        const p = posters[sent % CONNS];
        const ref = String(++p.ref);
        p.pending.set(ref, Date.now());
        p.ws.send(JSON.stringify(['0', ref, p.topic, 'new_comment', { content: `bench comment ${sent}` }]));
        sent++;
      }
      if (Date.now() - t0 >= SECONDS * 1000) { clearInterval(tick); resolve(); }
    }, 5);
  });
  const sendEnd = Date.now();
  const acksOf = () => posters.reduce((a, p) => a + p.acks.length, 0);
  for (let w = 0; w < 200 && acksOf() + posters.reduce((a, p) => a + p.errors, 0) < sent; w++) await sleep(50);
  // Every acknowledged comment must arrive.
  const acks = posters.flatMap((p) => p.acks);
  let stats;
  for (let w = 0; w < 600; w++) {
    stats = await (await fetch(`${fake.url}/__stats`)).json();
    if (stats.paths >= acks.length) break;
    await sleep(100);
  }
  const cpu1 = nodes.map((n) => cpuOf(n.proc.pid));
  const lags = [];
  let missing = 0;
  for (const a of acks) {
    const at = stats.firstAt[`comments/${a.video}/${a.id}`];
    if (at === undefined) missing++; else lags.push(Math.max(0, at - a.at));
  }
  lags.sort((x, y) => x - y);
  const patch = stats.requests; // every request the fake saw (all PATCH)
  const elapsed = (Math.max(...Object.values(stats.firstAt)) - t0) / 1000;
  const leaderSync = await (await fetch(`${nodes[0].admin}/v1/sync`)).json();
  const res = {
    rate, sent, acked: acks.length, refused: posters.reduce((a, p) => a + p.errors, 0),
    achieved: acks.length / ((sendEnd - t0) / 1000), missing,
    p50: pct(lags, 0.5), p99: pct(lags, 0.99), max: lags[lags.length - 1],
    requests: patch, rps: patch / elapsed, per_request: acks.length / Math.max(1, patch),
    duplicates: stats.duplicates, resent: leaderSync.resent,
    cpu: cpu1.map((c, i) => (c - cpu0[i]) / ((Date.now() - t0) / 1000)),
    load: os.loadavg()[0],
  };
  for (const p of posters) p.ws.close();
  for (const n of nodes.reverse()) await stopNode(n);
  fake.p.kill('SIGTERM');
  say(JSON.stringify(res));
  return { res, cmds };
}

// CPU seconds of a process (utime + stime) from /proc.
function cpuOf(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ is 100 on Linux
  } catch { return 0; }
}

const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f0 = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');

const results = [];
let cmds = [];
for (const r of RATES) {
  const { res, cmds: c } = await runRate(r);
  results.push(res);
  cmds = c;
}
let commit = 'unknown';
try { commit = execSync('git describe --always --dirty', { cwd: ROOT }).toString().trim(); } catch { /* no git */ }
const last = results[results.length - 1];
const lines = [
  '## Firebase sync',
  '',
  `Produced by \`node tests/bench/firebase.mjs\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, parley ${commit}:`,
  `${NODES} node(s) on 127.0.0.1..${NODES} (release build, defaults: batches of up to 500 comments`,
  'and 1 MiB, 4 requests in flight), a fake Firebase REST server (tests/e2e/fake_firebase.mjs) in',
  `its own process answering every request after ${DELAY} ms, and ${CONNS} WebSocket posters sending`,
  `\`new_comment\` at a fixed rate for ${SECONDS} s, ${POST_ON === 'all' ? 'round-robin over every node.' : 'all on the leader: without comment replication (issue 9)'}`,
  ...(POST_ON === 'all' ? [] : ['the leader holds only its own comments; run `--post-on all` (the default) once it has landed.']),
  '*Lag* runs from the ok reply a poster gets (the comment is durable) to the first write of its',
  'path the fake receives; every acknowledged comment is checked to arrive. Same machine as',
  'above, shared with other jobs: the load average is given with each run.',
  '',
  '| comments/s (achieved) | lag p50 / p99 / max | Firebase requests/s | comments per request | missing | duplicates (counted) | node CPU (leader / others) | load |',
  '|---|---|---|---|---|---|---|---|',
  ...results.map((r) => `| ${f0(r.rate)} (${f0(r.achieved)}) | ${f0(r.p50)} / ${f0(r.p99)} / ${f0(r.max)} ms | ${f1(r.rps)} | ${f0(r.per_request)} | ${r.missing} | ${r.duplicates} (${r.resent}) | ${r.cpu.map((c) => `${Math.round(c * 100)}%`).join(' / ')} | ${r.load.toFixed(2)} |`),
  '',
  `Goal: lag p99 under 2 s at 5,000 comments/s with well under 100 requests/s: ${
    last.p99 < 2000 && last.rps < 100 ? 'met' : '**not met**'} (${f0(last.p99)} ms, ${f1(last.rps)} requests/s at ${f0(last.rate)}/s).`,
  'The batch adapts to the load: a request goes out at once when none is in flight, so at low',
  'rates a comment waits only for the database\'s answer; while one is out, only full batches join',
  'it, so the request rate stays near (1 s / answer time) and each request carries what arrived',
  'meanwhile.',
  '',
  'Commands (one run per rate):',
  '',
  '```',
  ...cmds.map((c) => c.replace(/\/tmp\/parley-fbbench-\w+/, 'DATA')),
  `node tests/bench/firebase.mjs --nodes ${NODES} --rates ${RATES.join(',')} --seconds ${SECONDS} --delay ${DELAY} --post-on ${POST_ON}`,
  '```',
  '',
];
if (!flag('no-write')) {
  let doc = existsSync(OUT) ? readFileSync(OUT, 'utf8') : '# Benchmarks\n';
  const start = doc.indexOf('\n## Firebase sync\n');
  if (start >= 0) {
    const next = doc.indexOf('\n## ', start + 5);
    doc = doc.slice(0, start + 1) + lines.join('\n') + (next >= 0 ? doc.slice(next + 1) : '');
  } else {
    doc = `${doc.replace(/\n*$/, '\n\n')}${lines.join('\n')}`;
  }
  writeFileSync(OUT, doc);
  say(`wrote the "## Firebase sync" section of ${OUT}`);
} else {
  process.stdout.write(lines.join('\n'));
}
