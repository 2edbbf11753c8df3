// SPDX-License-Identifier: Apache-2.0
// The public HTTP side of a node: health endpoints, refused upgrades (each
// answered with a status line and a closed socket, never a hang), token
// checks, origin checks, `parley token`, and SIGTERM closing sockets with 1012.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import {
  BIN, SECRET, startNode, stopCleanNow, token, raw, rawOpen, rawHeartbeat, rawJoin, httpGet, httpRaw,
  socket, connected, ping, wsHandshake, sleep,
} from './lib.mjs';

const b64u = (x) => Buffer.from(x).toString('base64url');
const upgradeHeaders = (host, extra = '') => `Host: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}`;

// Expects the upgrade to be refused with `status`.
async function refused(node, query, status = 403, headers) {
  const ws = raw(node, { query, headers });
  ws.on('error', () => {});
  await assert.rejects(ws.opened, (e) => {
    assert.equal(e.status, status, `query ${query}: ${e.message}`);
    return true;
  });
  ws.terminate();
}

describe('public HTTP', () => {
  let node;
  before(async () => { node = await startNode(); });
  after(async () => { await stopCleanNow(node, assert); });

  it('/healthz 200, /readyz 200 once ready, unknown path 404', async () => {
    assert.equal((await httpGet(`${node.http}/healthz`)).status, 200);
    const ready = await httpGet(`${node.http}/readyz`);
    assert.equal(ready.status, 200, ready.text);
    assert.equal((await httpGet(`${node.http}/nope`)).status, 404);
    assert.equal((await httpGet(`${node.http}/socket`)).status, 404);
    assert.equal((await httpGet(`${node.http}/`)).status, 404);
  });

  it('raw requests get a status line and a closed socket', async () => {
    const h = `${node.host}:${node.port}`;
    const cases = [
      // [name, request, acceptable statuses]
      ['plain GET of the socket path', `GET /socket/websocket HTTP/1.1\r\nHost: ${h}\r\n\r\n`, [400, 426]],
      ['GET /healthz', `GET /healthz HTTP/1.1\r\nHost: ${h}\r\n\r\n`, [200]],
      ['HTTP/1.0 GET /healthz', 'GET /healthz HTTP/1.0\r\n\r\n', [200]],
      ['unknown path', `GET /x/y/z HTTP/1.1\r\nHost: ${h}\r\n\r\n`, [404]],
      ['missing Sec-WebSocket-Key', `GET /socket/websocket?vsn=2.0.0&token=${token('u')} HTTP/1.1\r\nHost: ${h}\r\n` +
        'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n', [400]],
      ['short Sec-WebSocket-Key', `GET /socket/websocket?vsn=2.0.0&token=${token('u')} HTTP/1.1\r\nHost: ${h}\r\n` +
        'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 13\r\n\r\n', [400]],
      ['no Upgrade header', `GET /socket/websocket?vsn=2.0.0&token=${token('u')} HTTP/1.1\r\nHost: ${h}\r\n` +
        'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n', [400, 426]],
      ['POST to the socket path', `POST /socket/websocket HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 0\r\n\r\n`, [400, 405]],
      ['garbage request line', 'HELLO THERE\r\n\r\n', [400]],
      ['binary junk', Buffer.from([0, 1, 2, 255, 254, 13, 10, 13, 10]), [400]],
      ['header line with no colon', `GET /healthz HTTP/1.1\r\nHost: ${h}\r\nthis is not a header\r\n\r\n`, [400]],
      ['huge header', `GET /healthz HTTP/1.1\r\nHost: ${h}\r\nX-Big: ${'a'.repeat(200000)}\r\n\r\n`, [400, 413, 431]],
    ];
    for (const [name, req, ok] of cases) {
      const r = await httpRaw(node, req, { timeout: 3000 });
      assert.ok(ok.includes(r.status), `${name}: got "${r.statusLine}", want ${ok}`);
      assert.equal(r.closed, true, `${name}: socket left open after "${r.statusLine}"`);
    }
  });

  it('431 says what it is; LF-only lines get 400 at once, not at the handshake deadline', async () => {
    const h = `${node.host}:${node.port}`;
    const big = await httpRaw(node, `GET /healthz HTTP/1.1\r\nHost: ${h}\r\nX-Big: ${'a'.repeat(9000)}\r\n\r\n`);
    assert.equal(big.status, 431, big.statusLine);
    assert.match(big.body, /8192 bytes/);
    for (const req of ['GET /healthz HTTP/1.1\nHost: x\n\n', `GET /healthz HTTP/1.1\r\nHost: ${h}\n\n`]) {
      const t0 = Date.now();
      const r = await httpRaw(node, req, { timeout: 5000 });
      assert.equal(r.status, 400, `${JSON.stringify(req)}: ${r.statusLine}`);
      assert.ok(Date.now() - t0 < 2000, `${JSON.stringify(req)}: answered after ${Date.now() - t0} ms`);
      assert.equal(r.closed, true);
    }
  });

  it('a wrong Sec-WebSocket-Version gets 426 with Sec-WebSocket-Version: 13', async () => {
    const r = await httpRaw(node, `GET /socket/websocket?vsn=2.0.0&token=${token('u')} HTTP/1.1\r\n` +
      `${upgradeHeaders(`${node.host}:${node.port}`, 'Sec-WebSocket-Version: 8\r\n')}\r\n`);
    assert.equal(r.status, 426, r.statusLine);
    assert.equal(r.headers['sec-websocket-version'], '13');
    assert.equal(r.closed, true);
  });

  it('a correct upgrade answers 101 with the RFC 6455 accept key', async () => {
    const c = await wsHandshake(node);
    try {
      assert.match(c.response, /^HTTP\/1\.1 101/);
      assert.match(c.response, /\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
    } finally { c.sock.destroy(); }
  });

  it('a request that never finishes is dropped, not kept for ever', { timeout: 20000 }, async () => {
    const r = await httpRaw(node, `GET /socket/websocket HTTP/1.1\r\nHost: x\r\nX-Slow: `, { timeout: 15000 });
    assert.equal(r.closed, true, 'half-sent request kept open for 15 s');
  });

  it('bad tokens are refused with 403 on the upgrade', async () => {
    const now = Math.floor(Date.now() / 1000);
    const hdr = (alg) => b64u(JSON.stringify({ alg, typ: 'JWT' }));
    const body = b64u(JSON.stringify({ sub: 'mallory', exp: now + 3600 }));
    const none = `${hdr('none')}.${body}.`;
    const noneSigned = `${hdr('none')}.${body}.${b64u(createHmac('sha256', SECRET).update(`${hdr('none')}.${body}`).digest())}`;
    const hs512 = `${hdr('HS512')}.${body}.${b64u(createHmac('sha512', SECRET).update(`${hdr('HS512')}.${body}`).digest())}`;
    const tampered = token('alice').split('.');
    tampered[1] = b64u(JSON.stringify({ sub: 'admin', exp: now + 3600 }));
    const cases = {
      'missing token': 'vsn=2.0.0',
      'empty token': 'vsn=2.0.0&token=',
      'garbage token': 'vsn=2.0.0&token=abc.def.ghi',
      'two parts': `vsn=2.0.0&token=${token('a').split('.').slice(0, 2).join('.')}`,
      'bad signature': `vsn=2.0.0&token=${token('alice', { secret: 'not-the-secret' })}`,
      'tampered payload': `vsn=2.0.0&token=${tampered.join('.')}`,
      'expired': `vsn=2.0.0&token=${token('alice', { exp: now - 10 })}`,
      'alg none, empty signature': `vsn=2.0.0&token=${none}`,
      'alg none, signed anyway': `vsn=2.0.0&token=${noneSigned}`,
      'alg HS512': `vsn=2.0.0&token=${hs512}`,
      'no sub': `vsn=2.0.0&token=${token(undefined)}`,
      'sub not a string': `vsn=2.0.0&token=${token(12345)}`,
      'sub over 256 bytes': `vsn=2.0.0&token=${token('u'.repeat(257))}`,
      'sub with a control character': `vsn=2.0.0&token=${token('a\u0007b')}`,
      'sub with a newline': `vsn=2.0.0&token=${token('a\nb')}`,
    };
    for (const [name, q] of Object.entries(cases)) {
      await refused(node, q).catch((e) => { throw new Error(`${name}: ${e.message}`); });
    }
    // And the real thing still works.
    const ok = await rawOpen(node, { user: 'alice' });
    await rawHeartbeat(ok);
    ok.close();
  });

  it('vsn: 3.0.0 and junk are refused with 403; absent vsn means V1', async () => {
    await refused(node, `vsn=3.0.0&token=${token('u')}`);
    await refused(node, `vsn=banana&token=${token('u')}`);
    const v1 = await rawOpen(node, { query: `token=${token('u')}` });
    try {
      v1.sendJson({ topic: 'phoenix', event: 'heartbeat', payload: {}, ref: 'x' });
      assert.deepEqual(await v1.next((m) => m.ref === 'x'),
        { topic: 'phoenix', event: 'phx_reply', payload: { status: 'ok', response: {} }, ref: 'x' });
    } finally { v1.close(); }
  });

  it('`parley token` prints a token the node accepts', async () => {
    const run = (args) => new Promise((resolve) => {
      const p = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '', err = '';
      p.stdout.on('data', (d) => { out += d; });
      p.stderr.on('data', (d) => { err += d; });
      p.on('exit', (code) => resolve({ code, out, err }));
    });
    const r = await run(['token', '--user', 'tokenuser', '--jwt-secret', SECRET]);
    assert.equal(r.code, 0, r.err);
    const tok = r.out.trim();
    assert.match(tok, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const claims = JSON.parse(Buffer.from(tok.split('.')[1], 'base64url').toString());
    assert.equal(claims.sub, 'tokenuser');
    assert.ok(claims.exp > Date.now() / 1000, `exp ${claims.exp}`);
    const ws = await rawOpen(node, { query: `vsn=2.0.0&token=${tok}` });
    try {
      // The token's user is the socket's user: it may join its own presence topic only.
      const own = await rawJoin(ws, 'presence:tokenuser', { device_id: 'd1' });
      assert.equal(own[4].status, 'ok', JSON.stringify(own));
      const other = await rawJoin(ws, 'presence:someoneelse', { device_id: 'd1' });
      assert.deepEqual(other[4], { status: 'error', response: { reason: 'unauthorized' } });
    } finally { ws.close(); }
    // Environment twin of the secret, and --ttl.
    const p = await new Promise((resolve) => {
      const c = spawn(BIN, ['token', '--user', 'envuser', '--ttl', '60'], {
        stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PARLEY_JWT_SECRET: SECRET },
      });
      let out = '';
      c.stdout.on('data', (d) => { out += d; });
      c.on('exit', (code) => resolve({ code, out }));
    });
    assert.equal(p.code, 0);
    const c2 = JSON.parse(Buffer.from(p.out.trim().split('.')[1], 'base64url').toString());
    assert.ok(Math.abs(c2.exp - (Date.now() / 1000 + 60)) < 10, `ttl 60 gave exp ${c2.exp}`);
    const ws2 = await rawOpen(node, { query: `vsn=2.0.0&token=${p.out.trim()}` });
    ws2.close();
    // A token made with another secret is refused.
    const bad = await run(['token', '--user', 'x', '--jwt-secret', 'another-secret-0123456789abcdef']);
    assert.equal(bad.code, 0, bad.err);
    await refused(node, `vsn=2.0.0&token=${bad.out.trim()}`);
  });
});

describe('--allowed-origins', () => {
  let node;
  before(async () => { node = await startNode({ args: ['--allowed-origins', 'http://ok.example,https://also.example'] }); });
  after(async () => { await stopCleanNow(node, assert); });

  it('an Origin not in the list gets 403; listed origins and no Origin connect', async () => {
    await refused(node, `vsn=2.0.0&token=${token('o')}`, 403, { Origin: 'http://evil.example' });
    await refused(node, `vsn=2.0.0&token=${token('o')}`, 403, { Origin: 'http://ok.example.evil.com' });
    await refused(node, `vsn=2.0.0&token=${token('o')}`, 403, { Origin: 'https://ok.example' });
    await refused(node, `vsn=2.0.0&token=${token('o')}`, 403, { Origin: 'null' });
    for (const headers of [{ Origin: 'http://ok.example' }, { Origin: 'https://also.example' }, undefined]) {
      const ws = await rawOpen(node, { user: 'o', headers });
      await rawHeartbeat(ws);
      ws.close();
    }
  });
});

describe('SIGTERM', () => {
  it('closes open sockets with 1012 and exits 0', async () => {
    const node = await startNode();
    const a = await rawOpen(node, { user: 'a' });
    const b = await rawOpen(node, { user: 'b', vsn: '1.0.0' });
    await rawJoin(a, 'comments:sigterm');
    const sock = socket(node, 'c', { reconnectAfterMs: () => 60000 });
    await connected(sock);
    await ping(sock);
    const phxClose = new Promise((r) => sock.onClose((e) => r(e)));
    // A half-open HTTP request must not hold the drain up either.
    const half = (await import('node:net')).default.connect(node.port, node.host);
    half.on('error', () => {});
    half.write('GET /healthz HTTP/1.1\r\n');
    await sleep(100);
    const t0 = Date.now();
    const stopped = stopCleanNow(node, assert);
    const [ca, cb, cc] = await Promise.all([a.closed(), b.closed(), phxClose]);
    assert.equal(ca.code, 1012, JSON.stringify(ca));
    assert.equal(cb.code, 1012, JSON.stringify(cb));
    assert.equal(cc.code, 1012, `phoenix client saw ${cc.code}`);
    await stopped;
    sock.disconnect();
    half.destroy();
    assert.ok(Date.now() - t0 < 15000, `drain took ${Date.now() - t0} ms`);
  });
});
