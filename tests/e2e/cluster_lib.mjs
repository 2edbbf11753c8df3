// SPDX-License-Identifier: Apache-2.0
// Helpers for the multi-node suite (cluster.test.mjs): the admin CLI, views
// of membership, the partition hook, raw connections to a node's NNG bus
// port, a tiny msgpack encoder for hostile cluster messages, and a WebSocket
// client that never finishes the closing handshake.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { BIN, sleep, token, waitFor, wsFrame } from './lib.mjs';

// Runs `parley ARGS...`; resolves {code, stdout, stderr}.
export function cli(args, { timeout = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`parley ${args.join(' ')}: timed out`)); }, timeout);
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('error', (e) => { clearTimeout(t); reject(e); });
    p.on('close', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
  });
}

// A node's /v1/members as {self, status: {name: status}, inc: {name: n}, body}.
export async function membersOf(node) {
  const body = await node.adminJson('/v1/members');
  const status = {};
  const inc = {};
  for (const m of body.members) {
    status[m.name] = m.status;
    inc[m.name] = m.incarnation;
  }
  return { self: body.self, status, inc, body };
}

export const leaderOf = (node) => node.adminJson('/v1/leader');

// Waits until every node's view is exactly `status` ({name: status}) and
// its leader is `leader`. The error names each node's last view.
export async function waitViews(nodes, status, leader, { timeout = 8000, interval = 50, what = 'views' } = {}) {
  let last = [];
  try {
    await waitFor(async () => {
      last = await Promise.all(nodes.map(async (n) => {
        const [v, l] = await Promise.all([membersOf(n), leaderOf(n)]);
        return { node: n.name, status: v.status, leader: l.leader };
      }));
      return last.every((v) => JSON.stringify(sorted(v.status)) === JSON.stringify(sorted(status)) &&
        v.leader === leader);
    }, { timeout: Math.max(timeout, 1), interval, what });
  } catch (e) {
    const stats = await Promise.all(nodes.map((n) => n.adminJson('/v1/stats').then((x) => JSON.stringify(x.cluster), () => '?')));
    e.message += `\ncluster stats:\n${nodes.map((n, i) => `  ${n.name}: ${stats[i]}`).join('\n')}`;
    e.message += `\nwanted ${JSON.stringify(status)} leader ${leader}; last views:\n` +
      last.map((v) => `  ${v.node}: ${JSON.stringify(v.status)} leader ${v.leader}`).join('\n') +
      nodes.map((n) => `\n--- ${n.name} log (membership lines)\n` + n.logs.split('\n')
        .filter((l) => /CLU-|BRK-MEMBER|BRK-CLUSTER/.test(l) && !/CLU-MALFORMED/.test(l)).slice(-25).join('\n')).join('');
    throw e;
  }
  return last;
}

const sorted = (o) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

// SIGTERMs every node still running, then asserts each exited 0 (under the
// sanitizer build that also means no leaks) and removes its data.
// A node that has not exited 15 s after SIGTERM is reported with the stack
// of its main thread (when gdb is installed), then killed.
export async function stopAll(nodes, assert) {
  const live = nodes.filter((n) => !n.exited);
  const res = await Promise.all(live.map((n) => stopOrDiagnose(n)));
  live.forEach((n, i) => {
    assert.deepEqual(res[i].exit, { code: 0, sig: null }, `node ${n.name} exit${res[i].why}\n${tailOf(n.logs)}`);
    n.cleanup();
  });
}

function stopOrDiagnose(n) {
  n.proc.kill('SIGTERM');
  return waitExit(n);
}

// Waits up to ms for a node that was told to stop; resolves {exit, why}.
// A node still running is reported with its main thread's stack (when gdb
// is installed), then killed.
export async function waitExit(n, ms = 15000) {
  const exit = await Promise.race([n.exit, sleep(ms).then(() => null)]);
  if (exit) { return { exit, why: '' }; }
  const bt = await gdbStack(n.proc.pid);
  await n.kill9();
  return { exit: { hung: true }, why: `: still running ${ms} ms after SIGTERM (killed). Main thread:\n${bt}` };
}

// Asserts that a node told to stop exits 0 (see waitExit).
export async function assertExit0(n, assert) {
  const r = await waitExit(n);
  assert.deepEqual(r.exit, { code: 0, sig: null }, `node ${n.name} exit${r.why}\n${tailOf(n.logs)}`);
}

function gdbStack(pid) {
  return new Promise((resolve) => {
    const p = spawn('gdb', ['-p', String(pid), '-batch', '-ex', 'thread 1', '-ex', 'bt 25'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const t = setTimeout(() => p.kill('SIGKILL'), 20000);
    p.stdout.on('data', (d) => { out += d; });
    p.on('error', () => { clearTimeout(t); resolve('(gdb not available)'); });
    p.on('close', () => { clearTimeout(t); resolve(out.split('\n').filter((l) => /^#\d/.test(l)).join('\n') || '(no stack)'); });
  });
}

// The end of a node's log; a sanitizer report is kept whole.
function tailOf(logs) {
  const i = logs.search(/ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
  if (i >= 0) { return logs.slice(Math.max(0, i - 1500), i + 20000); }
  return logs.slice(-3000);
}

// The partition hook (--cluster-test-hooks): blocks or unblocks a <-> b,
// calling each side for its peer.
export async function block(a, b, on) {
  for (const [x, y] of [[a, b], [b, a]]) {
    const res = await fetch(`${x.admin}/v1/test/block?peer=${encodeURIComponent(y.name)}&on=${on ? 1 : 0}`, { method: 'POST' });
    const body = await res.text();
    if (res.status !== 200 || !JSON.parse(body).ok) {
      throw new Error(`block ${x.name} -> ${y.name} on=${on}: ${res.status} ${body}`);
    }
  }
}

// A raw TCP connection to a node's bus port. With handshake, sends the SP
// header for bus0 (protocol 0x70) and waits for the node's own header
// (peerHeader). message(buf) sends one SP message (64-bit big-endian length,
// then the bytes). closedWithin(ms) resolves true once the node has closed
// the connection, false if it is still open after ms.
export function busConnect(node, { handshake = true } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect(node.busPort, node.host);
    let closed = false;
    let buf = Buffer.alloc(0);
    const closers = [];
    const api = {
      sock: s,
      peerHeader: null,
      write: (b) => { if (!closed) { s.write(b); } },
      message: (b) => {
        const len = Buffer.alloc(8);
        len.writeBigUInt64BE(BigInt(b.length));
        api.write(Buffer.concat([len, b]));
      },
      end: () => s.destroy(),
      closedWithin: (ms) => new Promise((res) => {
        if (closed) { res(true); return; }
        const t = setTimeout(() => { s.destroy(); res(false); }, ms);
        closers.push(() => { clearTimeout(t); res(true); });
      }),
    };
    s.on('error', () => {});
    s.on('close', () => { closed = true; for (const c of closers) { c(); } });
    s.on('connect', () => {
      if (!handshake) { resolve(api); return; }
      s.write(Buffer.from([0, 0x53, 0x50, 0, 0, 0x70, 0, 0]));
    });
    s.on('data', (d) => {
      if (api.peerHeader) { return; }
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 8) { api.peerHeader = buf.subarray(0, 8); resolve(api); }
    });
    setTimeout(() => { if (handshake && !api.peerHeader) { s.destroy(); reject(new Error('bus: no SP header from the node')); } }, 3000);
  });
}

// Minimal msgpack encoder: null, booleans, integers (negative too),
// strings, Buffers (bin), arrays and plain objects (maps).
export function mp(v) {
  const out = [];
  const u = (n, bytes) => { for (let i = bytes - 1; i >= 0; i--) { out.push(Number((BigInt(n) >> BigInt(8 * i)) & 0xffn)); } };
  const enc = (x) => {
    if (x === null || x === undefined) { out.push(0xc0); } else if (x === true) { out.push(0xc3); } else if (x === false) { out.push(0xc2); } else if (typeof x === 'number' || typeof x === 'bigint') {
      const n = BigInt(x);
      if (n >= 0n) {
        if (n < 128n) { out.push(Number(n)); } else if (n < 0x100n) { out.push(0xcc); u(n, 1); } else if (n < 0x10000n) { out.push(0xcd); u(n, 2); } else if (n < 0x100000000n) { out.push(0xce); u(n, 4); } else { out.push(0xcf); u(n, 8); }
      } else if (n >= -32n) { out.push(Number(n & 0xffn)); } else if (n >= -128n) { out.push(0xd0); u(n & 0xffn, 1); } else if (n >= -32768n) { out.push(0xd1); u(n & 0xffffn, 2); } else { out.push(0xd3); u(n & 0xffffffffffffffffn, 8); }
    } else if (typeof x === 'string') {
      const b = Buffer.from(x);
      if (b.length < 32) { out.push(0xa0 | b.length); } else if (b.length < 0x100) { out.push(0xd9); u(b.length, 1); } else if (b.length < 0x10000) { out.push(0xda); u(b.length, 2); } else { out.push(0xdb); u(b.length, 4); }
      out.push(...b);
    } else if (Buffer.isBuffer(x)) {
      if (x.length < 0x100) { out.push(0xc4); u(x.length, 1); } else if (x.length < 0x10000) { out.push(0xc5); u(x.length, 2); } else { out.push(0xc6); u(x.length, 4); }
      out.push(...x);
    } else if (Array.isArray(x)) {
      if (x.length < 16) { out.push(0x90 | x.length); } else if (x.length < 0x10000) { out.push(0xdc); u(x.length, 2); } else { out.push(0xdd); u(x.length, 4); }
      for (const e of x) { enc(e); }
    } else {
      const es = Object.entries(x);
      if (es.length < 16) { out.push(0x80 | es.length); } else { out.push(0xde); u(es.length, 2); }
      for (const [k, e] of es) { enc(k); enc(e); }
    }
  };
  enc(v);
  return Buffer.from(out);
}

// A seeded PRNG (mulberry32) so that garbage is the same on every run.
export function seeded(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    bytes: (n) => { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) { b[i] = Math.floor(next() * 256); } return b; },
  };
}

// The value of an unlabelled Prometheus sample, or undefined.
export function metricValue(text, name) {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text || '');
  return m ? Number(m[1]) : undefined;
}

// A WebSocket client on a half-open-capable TCP socket that answers
// nothing once the node starts closing: it keeps the node's side open
// (the node half-closes, then lingers) until destroy().
export function halfOpenWs(node, user = 'slow') {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: node.host, port: node.port, allowHalfOpen: true });
    let head = '';
    let done = false;
    s.on('error', () => {});
    s.on('data', (d) => {
      if (done) { return; }
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) { return; }
      done = true;
      if (!/^HTTP\/1\.1 101/.test(head)) { s.destroy(); reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`)); return; }
      resolve({
        heartbeat: () => s.write(wsFrame(1, JSON.stringify([null, '1', 'phoenix', 'heartbeat', {}]))),
        destroy: () => s.destroy(),
      });
    });
    s.write(`GET /socket/websocket?vsn=2.0.0&token=${token(user)} HTTP/1.1\r\nHost: ${node.host}:${node.port}\r\n` +
      'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
      'Sec-WebSocket-Version: 13\r\n\r\n');
  });
}
