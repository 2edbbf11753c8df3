// SPDX-License-Identifier: Apache-2.0
// Test harness: starts real `parley serve` processes on loopback, mints
// tokens, and wraps the official phoenix client (with `ws` as its transport)
// in promises. Every node is stopped with SIGTERM at the end of a test and
// must exit 0: under the sanitizer build that also proves no leaks.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Socket, Presence } from 'phoenix';
import WebSocket from 'ws';

export const BIN = process.env.PARLEY_BIN ||
  path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '../../build/broker/parley');
export const SECRET = 'e2e-test-secret-0123456789abcdef';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Ports handed out by this process: the kernel may give the same free port
// to two calls in a row (each closes it before returning), and a node
// started with it twice (say --admin and --cluster-direct-listen) fails.
const handedOut = new Set();

function anyFreePort(host) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function freePort(host = '127.0.0.1') {
  for (;;) {
    const port = await anyFreePort(host);
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

const b64u = (buf) => Buffer.from(buf).toString('base64url');

export function token(user, { secret = SECRET, exp, alg = 'HS256', claims = {} } = {}) {
  const header = b64u(JSON.stringify({ alg, typ: 'JWT' }));
  const body = b64u(JSON.stringify({
    sub: user, exp: exp ?? Math.floor(Date.now() / 1000) + 3600, ...claims,
  }));
  const sig = b64u(createHmac('sha256', secret).update(`${header}.${body}`).digest());
  return `${header}.${body}.${sig}`;
}

export async function waitFor(fn, { timeout = 10000, interval = 50, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { last = e; }
    await sleep(interval);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

export async function httpGet(url) {
  const res = await fetch(url);
  return { status: res.status, text: await res.text() };
}

// Starts a node. opts: host (127.0.0.x), name, join (array of bus URLs),
// data (reuse a data dir), args (extra flags), env, noSecretFlag (leave
// out --jwt-secret: the secret comes from env, a file or the data dir).
export async function startNode(opts = {}) {
  const host = opts.host || '127.0.0.1';
  const port = opts.port || await freePort(host);
  const adminPort = opts.adminPort || await freePort(host);
  const busPort = opts.busPort || await freePort(host);
  const directPort = opts.directPort || await freePort(host);
  const data = opts.data || mkdtempSync(path.join(os.tmpdir(), 'parley-e2e-'));
  const name = opts.name || `n${port}`;
  const args = ['serve',
    '--listen', `${host}:${port}`, '--admin', `${host}:${adminPort}`,
    '--cluster-listen', `tcp://${host}:${busPort}`,
    '--advertise', `tcp://${host}:${busPort}`,
    '--cluster-direct-listen', `tcp://${host}:${directPort}`,
    '--node-name', name, '--data', data,
    ...(opts.noSecretFlag ? [] : ['--jwt-secret', SECRET]),
    ...(opts.join ? ['--join', opts.join.join(',')] : []),
    ...(opts.args || [])];
  const proc = spawn(BIN, args, {
    env: { ...process.env, ...(opts.env || {}) }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const node = {
    host, port, adminPort, busPort, directPort, data, name, proc, logs: '',
    url: `ws://${host}:${port}/socket`,
    http: `http://${host}:${port}`,
    admin: `http://${host}:${adminPort}`,
    bus: `tcp://${host}:${busPort}`,
    exited: null,
  };
  proc.stdout.on('data', (d) => { node.logs += d; });
  proc.stderr.on('data', (d) => { node.logs += d; });
  node.exit = new Promise((resolve) => proc.on('exit', (code, sig) => {
    node.exited = { code, sig };
    resolve(node.exited);
  }));
  node.stop = async (signal = 'SIGTERM') => {
    if (!node.exited) proc.kill(signal);
    let timer;
    const res = await Promise.race([node.exit,
      new Promise((r) => { timer = setTimeout(() => r(null), 20000); })]);
    clearTimeout(timer);
    if (!res) { proc.kill('SIGKILL'); await node.exit; throw new Error(`${name} did not stop on ${signal}\n${node.logs}`); }
    return res;
  };
  node.kill9 = async () => { proc.kill('SIGKILL'); await node.exit; };
  node.cleanup = () => { if (!opts.data && !opts.keepData) rmSync(data, { recursive: true, force: true }); };
  node.adminJson = async (p, method = 'GET') => {
    const res = await fetch(node.admin + p, { method });
    return res.json();
  };
  await waitFor(async () => {
    if (node.exited) throw new Error(`${name} exited early: ${JSON.stringify(node.exited)}\n${node.logs}`);
    const r = await httpGet(`${node.http}/healthz`);
    return r.status === 200;
  }, { what: `${name} /healthz`, timeout: 15000 });
  return node;
}

// Stops a node with SIGTERM and asserts a clean exit (0: drained, no leaks).
export async function stopClean(node, assert) {
  const res = await node.stop('SIGTERM');
  assert.deepEqual(res, { code: 0, sig: null }, `node ${node.name} exit\n${node.logs.slice(-3000)}`);
  node.cleanup();
}

export function socket(node, user, { vsn = '2.0.0', params = {}, ...rest } = {}) {
  const sock = new Socket(node.url, {
    transport: WebSocket,
    params: { token: token(user), ...params },
    vsn,
    heartbeatIntervalMs: 30000,
    reconnectAfterMs: () => 200,
    rejoinAfterMs: () => 200,
    ...rest,
  });
  sock.connect();
  return sock;
}

export function join(channel, timeout = 5000) {
  return new Promise((resolve, reject) => {
    channel.join(timeout)
      .receive('ok', resolve)
      .receive('error', (e) => reject(Object.assign(new Error(`join error: ${JSON.stringify(e)}`), { reply: e })))
      .receive('timeout', () => reject(new Error('join timeout')));
  });
}

// Resolves with {status, response} whatever the status.
export function push(channel, event, payload, timeout = 5000) {
  return new Promise((resolve, reject) => {
    channel.push(event, payload, timeout)
      .receive('ok', (r) => resolve({ status: 'ok', response: r }))
      .receive('error', (r) => resolve({ status: 'error', response: r }))
      .receive('timeout', () => reject(new Error(`push ${event} timeout`)));
  });
}

// A raw WebSocket that collects decoded messages, for protocol-level tests.
export function raw(node, { user = 'raw', vsn = '2.0.0', query, headers } = {}) {
  const q = query ?? `vsn=${vsn}&token=${token(user)}`;
  const ws = new WebSocket(`${node.url}/websocket?${q}`, { headers });
  const msgs = [];
  const waiters = [];
  ws.closeInfo = null;
  ws.on('message', (data, isBinary) => {
    const m = isBinary ? data : JSON.parse(data.toString());
    msgs.push(m);
    for (const w of [...waiters]) w();
  });
  ws.on('close', (code, reason) => { ws.closeInfo = { code, reason: reason.toString() }; for (const w of [...waiters]) w(); });
  ws.opened = new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('unexpected-response', (req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.on('error', reject);
  });
  ws.msgs = msgs;
  // Waits for the first message matching pred (searching from index `from`).
  ws.next = (pred, timeout = 5000) => new Promise((resolve, reject) => {
    const check = () => {
      const i = msgs.findIndex(pred);
      if (i >= 0) { cleanup(); resolve(msgs.splice(i, 1)[0]); return true; }
      if (ws.closeInfo) { cleanup(); reject(new Error(`closed ${JSON.stringify(ws.closeInfo)} while waiting`)); return true; }
      return false;
    };
    const t = setTimeout(() => { cleanup(); reject(new Error(`raw: timed out; have ${JSON.stringify(msgs)}`)); }, timeout);
    const cleanup = () => { clearTimeout(t); const k = waiters.indexOf(check); if (k >= 0) waiters.splice(k, 1); };
    if (!check()) waiters.push(check);
  });
  ws.closed = () => new Promise((resolve) => {
    if (ws.closeInfo) resolve(ws.closeInfo); else ws.on('close', () => resolve(ws.closeInfo));
  });
  ws.sendJson = (v) => ws.send(JSON.stringify(v));
  return ws;
}

export { Presence, Socket, WebSocket };

// ---- Helpers for the protocol, bad-input and HTTP suites (added; the
// functions above are unchanged). ----

// Resolves once a phoenix Socket is open.
export function connected(sock, timeout = 5000) {
  return waitFor(() => sock.isConnected(), { timeout, interval: 10, what: 'socket open' });
}

// Sends a heartbeat through the phoenix Socket; resolves with the latency.
export function ping(sock, timeout = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('heartbeat: no reply')), timeout);
    if (!sock.ping((ms) => { clearTimeout(t); resolve(ms); })) {
      clearTimeout(t); reject(new Error('heartbeat: socket not connected'));
    }
  });
}

// A phoenix Socket speaking V1 (JSON objects): the client's default codec is
// V2 whatever vsn says, so V1 needs its own encode/decode.
export function socketV1(node, user, opts = {}) {
  return socket(node, user, {
    vsn: '1.0.0',
    encode: (msg, cb) => cb(JSON.stringify(msg)),
    decode: (rawMsg, cb) => cb(JSON.parse(rawMsg)),
    ...opts,
  });
}

// Opens a raw WebSocket (see raw) and waits for the upgrade.
export async function rawOpen(node, opts) {
  const ws = raw(node, opts);
  await ws.opened;
  return ws;
}

let rawRef = 1000000;
// Sends a V2 heartbeat on a raw socket and waits for its reply.
export async function rawHeartbeat(ws, timeout = 3000) {
  const ref = String(rawRef++);
  ws.sendJson([null, ref, 'phoenix', 'heartbeat', {}]);
  const m = await ws.next((x) => Array.isArray(x) && x[1] === ref, timeout);
  if (m[3] !== 'phx_reply' || m[4].status !== 'ok') throw new Error(`bad heartbeat reply ${JSON.stringify(m)}`);
  return m;
}

// Joins a topic on a raw V2 socket; resolves with the reply frame.
export async function rawJoin(ws, topic, payload = {}, timeout = 5000) {
  const ref = String(rawRef++);
  ws.sendJson([ref, ref, topic, 'phx_join', payload]);
  return ws.next((x) => Array.isArray(x) && x[1] === ref && x[3] === 'phx_reply', timeout);
}

// Writes raw bytes as an HTTP request on a fresh TCP connection and collects
// the answer until the server closes (or `timeout` ms pass: closed stays
// false then). Resolves {status, statusLine, headers, body, closed, data}.
export function httpRaw(node, request, { timeout = 3000 } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect(node.port, node.host);
    const chunks = [];
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      s.destroy();
      const data = Buffer.concat(chunks).toString('latin1');
      const head = data.split('\r\n\r\n')[0];
      const lines = head.split('\r\n');
      const headers = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] || '');
      resolve({ status: m ? Number(m[1]) : null, statusLine: lines[0] || '', headers,
        body: data.slice(head.length + 4), closed, data });
    };
    const t = setTimeout(() => finish(false), timeout);
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => finish(true));
    s.on('close', () => finish(true));
    s.on('error', (e) => { if (e.code === 'ECONNRESET') finish(true); else if (!done) { done = true; clearTimeout(t); reject(e); } });
    s.write(request);
  });
}

// Builds one WebSocket frame. payload: Buffer|string; mask: client frames
// must be masked (RFC 6455 5.1); rsv: the three RSV bits (0..7).
export function wsFrame(opcode, payload = Buffer.alloc(0), { fin = true, rsv = 0, mask = true } = {}) {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const head = [(fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f)];
  const m = mask ? 0x80 : 0;
  if (p.length < 126) head.push(m | p.length);
  else if (p.length < 65536) head.push(m | 126, p.length >> 8, p.length & 0xff);
  else {
    head.push(m | 127);
    const l = Buffer.alloc(8); l.writeBigUInt64BE(BigInt(p.length)); head.push(...l);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), p]);
  const key = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const body = Buffer.from(p);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from(head), key, body]);
}

// Parses server frames out of buf; returns {frames, rest}.
export function wsParse(buf) {
  const frames = [];
  let off = 0;
  while (buf.length - off >= 2) {
    const b0 = buf[off], b1 = buf[off + 1];
    let len = b1 & 0x7f, hl = 2;
    if (len === 126) { if (buf.length - off < 4) break; len = buf.readUInt16BE(off + 2); hl = 4; }
    else if (len === 127) { if (buf.length - off < 10) break; len = Number(buf.readBigUInt64BE(off + 2)); hl = 10; }
    if (b1 & 0x80) hl += 4;
    if (buf.length - off < hl + len) break;
    const payload = buf.subarray(off + hl, off + hl + len);
    const f = { fin: !!(b0 & 0x80), rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked: !!(b1 & 0x80), payload };
    if (f.opcode === 8) {
      f.code = payload.length >= 2 ? payload.readUInt16BE(0) : null;
      f.reason = payload.subarray(2).toString();
    }
    frames.push(f);
    off += hl + len;
  }
  return { frames, rest: buf.subarray(off) };
}

// Performs a WebSocket upgrade by hand on a net socket. Resolves with
// {sock, frames, closed(), text(obj), nextFrame(pred)}: frames collects every
// parsed server frame; the socket's end is recorded in sock.ended.
export function wsHandshake(node, { user = 'raw', query, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const q = query ?? `vsn=2.0.0&token=${token(user)}`;
    const s = net.connect(node.port, node.host);
    let buf = Buffer.alloc(0);
    let upgraded = false;
    const frames = [];
    const waiters = [];
    const wake = () => { for (const w of [...waiters]) w(); };
    const api = {
      sock: s, frames, ended: false, bytes: 0,
      send: (b) => s.write(b),
      text: (v) => s.write(wsFrame(1, typeof v === 'string' ? v : JSON.stringify(v))),
      next: (pred, timeout = 5000) => new Promise((res, rej) => {
        const check = () => {
          const i = frames.findIndex(pred);
          if (i >= 0) { done(); res(frames.splice(i, 1)[0]); return true; }
          if (api.ended) { done(); rej(new Error(`socket ended while waiting; frames ${JSON.stringify(frames.map((f) => [f.opcode, f.code, f.payload.toString()]))}`)); return true; }
          return false;
        };
        const t = setTimeout(() => { done(); rej(new Error(`no matching frame; have ${JSON.stringify(frames.map((f) => [f.opcode, f.code, f.payload.toString().slice(0, 200)]))}`)); }, timeout);
        const done = () => { clearTimeout(t); const k = waiters.indexOf(check); if (k >= 0) waiters.splice(k, 1); };
        if (!check()) waiters.push(check);
      }),
      // Resolves with the close frame (or null) once the TCP connection ends.
      closed: (timeout = 5000) => new Promise((res, rej) => {
        const t = setTimeout(() => rej(new Error(`server did not close; frames ${JSON.stringify(frames.map((f) => [f.opcode, f.code, f.payload.toString().slice(0, 200)]))}`)), timeout);
        const check = () => {
          if (!api.ended) return false;
          clearTimeout(t);
          const k = waiters.indexOf(check); if (k >= 0) waiters.splice(k, 1);
          res(frames.find((f) => f.opcode === 8) || null);
          return true;
        };
        if (!check()) waiters.push(check);
      }),
    };
    const end = () => { api.ended = true; wake(); };
    s.on('end', end);
    s.on('close', end);
    s.on('error', (e) => { if (!upgraded) reject(e); end(); });
    s.on('data', (d) => {
      api.bytes += d.length;
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const i = buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        const head = buf.subarray(0, i).toString('latin1');
        buf = buf.subarray(i + 4);
        if (!/^HTTP\/1\.1 101/.test(head)) { s.destroy(); reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`)); return; }
        upgraded = true;
        api.response = head;
        resolve(api);
      }
      const { frames: fs, rest } = wsParse(buf);
      buf = Buffer.from(rest);
      if (fs.length) { frames.push(...fs); wake(); }
    });
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    s.write(`GET /socket/websocket?${q} HTTP/1.1\r\nHost: ${node.host}:${node.port}\r\n` +
      'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
      `${extra}\r\n`);
  });
}

// Two already-connected clients on one node, used to prove that bad input
// on another socket left the node working: check() runs a heartbeat on each
// and has `poster` push a new_comment that `watcher` must receive.
export async function bystanders(node, topic = 'comments:bystander') {
  const watcher = await rawOpen(node, { user: 'watcher' });
  const poster = await rawOpen(node, { user: 'poster' });
  const jw = await rawJoin(watcher, topic);
  const jp = await rawJoin(poster, topic);
  if (jw[4].status !== 'ok' || jp[4].status !== 'ok') throw new Error(`bystander join failed ${JSON.stringify([jw, jp])}`);
  let n = 0;
  return {
    watcher, poster,
    async check(what = 'bystanders') {
      if (watcher.closeInfo || poster.closeInfo) throw new Error(`${what}: bystander closed ${JSON.stringify(watcher.closeInfo || poster.closeInfo)}`);
      const t0 = Date.now();
      await rawHeartbeat(watcher);
      await rawHeartbeat(poster);
      const content = `still alive ${++n} ${Date.now()}`;
      const ref = String(rawRef++);
      poster.sendJson([jp[0], ref, topic, 'new_comment', { content }]);
      const reply = await poster.next((x) => x[1] === ref);
      if (reply[4].status !== 'ok') throw new Error(`${what}: post refused ${JSON.stringify(reply)}`);
      await watcher.next((x) => x[3] === 'new_comment' && x[4].content === content);
      return Date.now() - t0;
    },
    close() { watcher.close(); poster.close(); },
  };
}

// stopClean without node.stop's 20 s race timer, which stays armed after the
// node exits and so keeps a test file's process alive 20 s longer. Same
// checks: SIGTERM, exit 0 (drained, no leaks under the sanitizer build).
export async function stopCleanNow(node, assert) {
  if (!node.exited) node.proc.kill('SIGTERM');
  let timer;
  const res = await Promise.race([node.exit,
    new Promise((r) => { timer = setTimeout(() => r(null), 20000); })]);
  clearTimeout(timer);
  if (!res) {
    node.proc.kill('SIGKILL');
    await node.exit;
    assert.fail(`${node.name} did not stop on SIGTERM\n${node.logs.slice(-3000)}`);
  }
  assert.deepEqual(res, { code: 0, sig: null }, `node ${node.name} exit\n${node.logs.slice(-3000)}`);
  node.cleanup();
}
