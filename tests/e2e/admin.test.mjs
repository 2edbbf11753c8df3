// SPDX-License-Identifier: Apache-2.0
// The admin API as an attacker and a careless operator meet it: the bearer
// token (--admin-token-file, read by the CLI too), loopback-only without
// one, DNS rebinding (Host), cross-site requests (Origin, form bodies),
// wrong methods, unknown paths, oversized heads and bodies, requests that
// never finish, too many connections; every refusal a clear status and a
// JSON body. Then the CLI: --version, --help on every subcommand, errors
// printed with status and body, log-level, drain --wait.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startNode, stopCleanNow, httpRaw, freePort, sleep, waitFor, BIN } from './lib.mjs';
import { cli } from './cluster_lib.mjs';

const TOKEN = 'admin-token-0123456789abcdef0123456789';

function tokenFile(dir, value = TOKEN) {
  const f = path.join(dir, 'admin_token');
  writeFileSync(f, `${value}\n`);
  chmodSync(f, 0o600);
  return f;
}

// A request to the admin port; resolves {status, headers, json, text}.
async function admin(node, p, { method = 'GET', headers = {}, body } = {}) {
  const res = await fetch(`${node.admin}${p}`, { method, headers, body });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, json, text };
}

// Asserts a JSON refusal {"error": code, "message": ...} with status.
function refused(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.equal(r.json?.error, code, r.text);
  assert.equal(typeof r.json.message, 'string');
  assert.ok(r.json.message.length > 10, r.text);
}

const adminAddr = (node) => ({ host: node.host, port: node.adminPort });

describe('admin API with a token', () => {
  let node;
  let dir;
  const auth = { Authorization: `Bearer ${TOKEN}` };
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'parley-admin-'));
    node = await startNode({ args: ['--admin-token-file', tokenFile(dir)] });
  });
  after(async () => { await stopCleanNow(node, assert); rmSync(dir, { recursive: true, force: true }); });

  it('every endpoint but /metrics needs the bearer token', async () => {
    for (const [p, method] of [['/v1/members', 'GET'], ['/v1/leader', 'GET'], ['/v1/stats', 'GET'],
      ['/v1/sync', 'GET'], ['/v1/log-level', 'GET'], ['/v1/backup', 'GET'], ['/v1/drain', 'POST'],
      ['/v1/leave', 'POST'], ['/v1/log-level', 'POST'], ['/v1/sync/parked', 'GET'], ['/v1/sync/retry', 'POST']]) {
      const r = await admin(node, p, { method });
      refused(r, 401, 'missing_token');
      assert.match(r.headers.get('www-authenticate') || '', /^Bearer/, p);
      refused(await admin(node, p, { method, headers: { Authorization: 'Bearer wrong-token-0123456789' } }), 401, 'bad_token');
      refused(await admin(node, p, { method, headers: { Authorization: `Basic ${TOKEN}` } }), 401, 'bad_token');
      refused(await admin(node, p, { method, headers: { Authorization: `Bearer ${TOKEN}x` } }), 401, 'bad_token');
    }
    assert.equal((await admin(node, '/v1/members', { headers: auth })).status, 200);
    // /metrics stays open for scrapers.
    const m = await admin(node, '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.text, /^# HELP /);
    // The node is still serving after all that.
    assert.equal((await fetch(`${node.http}/readyz`)).status, 200);
  });

  it('the CLI reads the same token file (flag or PARLEY_ADMIN_TOKEN_FILE)', async () => {
    const f = path.join(dir, 'admin_token');
    const ok = await cli(['members', '--admin', `${node.host}:${node.adminPort}`, '--admin-token-file', f, '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).self, node.name);
    const env = await new Promise((resolve) => {
      const p = spawn(BIN, ['leader', '--admin', `${node.host}:${node.adminPort}`],
        { env: { ...process.env, PARLEY_ADMIN_TOKEN_FILE: f } });
      let out = '';
      p.stdout.on('data', (d) => { out += d; });
      p.on('exit', (code) => resolve({ code, out }));
    });
    assert.equal(env.code, 0);
    assert.equal(env.out.trim(), node.name);
    // Without it: the status and the API's message, exit 1.
    const no = await cli(['members', '--admin', `${node.host}:${node.adminPort}`]);
    assert.equal(no.code, 1);
    assert.match(no.stderr, /HTTP 401: send Authorization: Bearer/);
    const missing = await cli(['members', '--admin', `${node.host}:${node.adminPort}`, '--admin-token-file', path.join(dir, 'nope')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /admin token: cannot open .*nope/);
  });

  it('--metrics-auth puts /metrics behind the token too', async () => {
    const n2 = await startNode({ args: ['--admin-token-file', tokenFile(dir), '--metrics-auth'] });
    try {
      refused(await admin(n2, '/metrics'), 401, 'missing_token');
      assert.equal((await admin(n2, '/metrics', { headers: auth })).status, 200);
    } finally { await stopCleanNow(n2, assert); }
  });

  it('with a token the admin API may bind a non-loopback address', async () => {
    const port = await freePort('0.0.0.0');
    const n3 = await startNode({ adminPort: port, args: ['--admin', `0.0.0.0:${port}`, '--admin-token-file', tokenFile(dir)] });
    try {
      const r = await fetch(`http://127.0.0.1:${port}/v1/members`, { headers: auth });
      assert.equal(r.status, 200);
      // Bound to any address, Host may be any IP literal, never a name.
      const bad = await httpRaw({ host: '127.0.0.1', port },
        `GET /v1/members HTTP/1.1\r\nHost: attacker.example:${port}\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`);
      assert.equal(bad.status, 403, bad.statusLine);
      assert.equal(JSON.parse(bad.body).error, 'host_not_allowed');
    } finally { await stopCleanNow(n3, assert); }
  });
});

describe('admin API without a token', () => {
  let node;
  before(async () => { node = await startNode(); });
  after(async () => { await stopCleanNow(node, assert); });

  it('refuses to start on a non-loopback address, saying why', async () => {
    const p = await freePort('0.0.0.0');
    const r = await new Promise((resolve) => {
      const d = mkdtempSync(path.join(os.tmpdir(), 'parley-admin-'));
      const c = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--admin', `0.0.0.0:${p}`,
        '--cluster-listen', 'tcp://127.0.0.1:0', '--data', d, '--jwt-secret', 'x'.repeat(32)]);
      let err = '';
      c.stderr.on('data', (x) => { err += x; });
      c.on('exit', (code) => { rmSync(d, { recursive: true, force: true }); resolve({ code, err }); });
    });
    assert.equal(r.code, 1);
    assert.match(r.err, /--admin 0\.0\.0\.0:\d+ is not a loopback address.*--admin-token-file/s);
  });

  it('Host must name the bound address: DNS rebinding is refused', async () => {
    for (const host of ['evil.example', `evil.example:${node.adminPort}`, 'localhost.evil.example', '127.0.0.2']) {
      const r = await httpRaw(adminAddr(node), `GET /v1/members HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      assert.equal(r.status, 403, `${host}: ${r.statusLine}`);
      assert.equal(JSON.parse(r.body).error, 'host_not_allowed');
    }
    for (const host of [`127.0.0.1:${node.adminPort}`, 'localhost', `LOCALHOST:${node.adminPort}`]) {
      const r = await httpRaw(adminAddr(node), `GET /v1/leader HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      assert.equal(r.status, 200, `${host}: ${r.statusLine}`);
    }
    const noHost = await httpRaw(adminAddr(node), 'GET /v1/leader HTTP/1.1\r\n\r\n');
    assert.equal(noHost.status, 403, noHost.statusLine);
  });

  it('a cross-site form POST cannot drain the node', async () => {
    // What a page on evil.example makes a browser send.
    const form = await admin(node, '/v1/drain', {
      method: 'POST', headers: { Origin: 'http://evil.example', 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'a=b',
    });
    refused(form, 403, 'origin_refused');
    refused(await admin(node, '/v1/drain', { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'x' }),
      415, 'unsupported_media_type');
    refused(await admin(node, '/v1/leave', { method: 'POST', headers: { 'Content-Type': 'multipart/form-data; boundary=x' }, body: '--x--' }),
      415, 'unsupported_media_type');
    refused(await admin(node, '/v1/members', { headers: { Origin: 'null' } }), 403, 'origin_refused');
    // State changes are POST only; reads are GET only.
    const get = await admin(node, '/v1/drain');
    refused(get, 405, 'method_not_allowed');
    assert.equal(get.headers.get('allow'), 'POST');
    const put = await admin(node, '/v1/members', { method: 'PUT' });
    refused(put, 405, 'method_not_allowed');
    assert.equal(put.headers.get('allow'), 'GET');
    const ll = await admin(node, '/v1/log-level', { method: 'DELETE' });
    assert.equal(ll.headers.get('allow'), 'GET, POST');
    refused(await admin(node, '/v1/nope'), 404, 'not_found');
    refused(await admin(node, '/'), 404, 'not_found');
    // Still ready: nothing above drained or left.
    assert.equal((await fetch(`${node.http}/readyz`)).status, 200);
  });

  it('oversized heads and bodies are refused before memory is spent', async () => {
    const h = `Host: 127.0.0.1:${node.adminPort}\r\n`;
    const big = await httpRaw(adminAddr(node), `GET /v1/members HTTP/1.1\r\n${h}X-Big: ${'a'.repeat(200000)}\r\n\r\n`, { timeout: 5000 });
    assert.equal(big.status, 431, big.statusLine);
    assert.equal(JSON.parse(big.body).error, 'header_too_large');
    assert.equal(big.closed, true);
    const body = await httpRaw(adminAddr(node), `POST /v1/log-level HTTP/1.1\r\n${h}Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{`);
    assert.equal(body.status, 413, body.statusLine);
    assert.equal(JSON.parse(body.body).error, 'body_too_large');
    const te = await httpRaw(adminAddr(node), `POST /v1/leave HTTP/1.1\r\n${h}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`);
    assert.equal(te.status, 411, te.statusLine);
    const junk = await httpRaw(adminAddr(node), 'HELLO\r\n\r\n');
    assert.equal(junk.status, 400, junk.statusLine);
    assert.equal(JSON.parse(junk.body).error, 'bad_request');
    const two = await httpRaw(adminAddr(node), `POST /v1/leave HTTP/1.1\r\n${h}Content-Length: 0\r\nContent-Length: 5\r\n\r\n`);
    assert.equal(two.status, 400, two.statusLine);
  });

  it('streaming a 200 MB header keeps memory flat and gets 431', { timeout: 60000 }, async () => {
    const rss = async () => {
      const t = await (await fetch(`${node.admin}/metrics`)).text();
      const m = /\nprocess_resident_memory_bytes (\d+)/.exec(t);
      assert.ok(m, t.slice(0, 300));
      return Number(m[1]);
    };
    const before = await rss();
    const r = await new Promise((resolve) => {
      const s = net.connect(node.adminPort, node.host);
      let data = '';
      let sent = 0;
      const chunk = Buffer.alloc(1 << 20, 'a');
      s.on('data', (d) => { data += d; });
      s.on('error', () => {});
      s.on('close', () => resolve({ data, sent }));
      s.write(`GET /v1/members HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: `);
      const pump = () => {
        while (sent < 200 && s.writable) {
          sent++;
          if (!s.write(chunk)) { s.once('drain', pump); return; }
        }
      };
      pump();
      setTimeout(() => s.destroy(), 20000);
    });
    assert.match(r.data, /^HTTP\/1\.1 431 /, r.data.slice(0, 100));
    const after = await rss();
    assert.ok(after - before < 16 << 20, `RSS grew from ${before} to ${after}`);
  });

  it('a request that trickles in is cut at the deadline with 408', { timeout: 20000 }, async () => {
    const t0 = Date.now();
    const r = await new Promise((resolve) => {
      const s = net.connect(node.adminPort, node.host);
      let data = '';
      const req = `GET /v1/members HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${'s'.repeat(40)}\r\n\r\n`;
      let i = 0;
      // One byte every 200 ms: each byte would reset a per-read timeout.
      const t = setInterval(() => { if (i < req.length) s.write(req[i++]); }, 200);
      s.on('data', (d) => { data += d; });
      s.on('error', () => {});
      s.on('close', () => { clearInterval(t); resolve(data); });
    });
    const took = Date.now() - t0;
    assert.match(r, /^HTTP\/1\.1 408 /, r.slice(0, 80));
    assert.match(r, /"error":"request_timeout"/);
    assert.ok(took >= 4500 && took < 9000, `cut after ${took} ms`);
  });

  it('too many connections at once get 503, and the port recovers', async () => {
    const idle = [];
    for (let i = 0; i < 64; i++) {
      const s = net.connect(node.adminPort, node.host);
      s.on('error', () => {});
      idle.push(s);
      await new Promise((r) => s.on('connect', r));
    }
    await sleep(100);
    const r = await httpRaw(adminAddr(node), `GET /v1/leader HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    assert.equal(r.status, 503, r.statusLine);
    assert.equal(JSON.parse(r.body).error, 'busy');
    for (const s of idle) s.destroy();
    await waitFor(async () => (await admin(node, '/v1/leader')).status === 200, { what: 'admin port back' });
  });

  it('log-level changes the level live; a bad level is refused', async () => {
    const a = `${node.host}:${node.adminPort}`;
    const set = await cli(['log-level', 'debug', '--admin', a]);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout.trim(), 'debug');
    assert.equal((await cli(['log-level', '--admin', a])).stdout.trim(), 'debug');
    await waitFor(() => /\[BRK-LOGLEVEL\] log level info -> debug/.test(node.logs), { what: 'level change logged' });
    const bad = await cli(['log-level', 'loud', '--admin', a]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /HTTP 400: level must be error, warn, notice, info or debug/);
    // A JSON body works too.
    const r = await admin(node, '/v1/log-level', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"level":"info"}' });
    assert.deepEqual(r.json, { level: 'info', was: 'debug' });
  });
});

describe('parley CLI', () => {
  it('--version names the version and the git commit', async () => {
    const r = await cli(['--version']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^parley \d+\.\d+\.\d+ \(git [^)]+\)\n$/);
  });

  it('--help works on every subcommand', async () => {
    for (const cmd of ['serve', 'token', 'members', 'leader', 'stats', 'sync', 'drain', 'leave', 'log-level', 'backup']) {
      const r = await cli([cmd, '--help']);
      assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`usage: parley ${cmd}`), cmd);
      assert.equal(r.stderr, '', cmd);
    }
    const h = await cli(['--help']);
    assert.equal(h.code, 0);
    // Each flag's default is shown once.
    for (const line of h.stdout.split('\n').filter((l) => l.startsWith('  --'))) {
      assert.equal((line.match(/default/g) || []).length, 1, line);
    }
  });

  it('HTTP errors are printed with status and body, even an empty one', async () => {
    const srv = http.createServer((req, res) => {
      if (req.url === '/v1/members') { res.writeHead(500); res.end(); return; }
      res.writeHead(502, { 'Content-Type': 'text/plain' });
      res.end('upstream broke');
    });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const a = `127.0.0.1:${srv.address().port}`;
    try {
      const empty = await cli(['members', '--admin', a]);
      assert.equal(empty.code, 1);
      assert.match(empty.stderr, /HTTP 500: \(empty body\)/);
      const text = await cli(['stats', '--admin', a]);
      assert.equal(text.code, 1);
      assert.match(text.stderr, /HTTP 502: upstream broke/);
    } finally { srv.close(); }
    const down = await cli(['members', '--admin', `127.0.0.1:${await freePort()}`]);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot reach the admin API at 127\.0\.0\.1:\d+/);
    const bad = await cli(['members', '--bogus']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown or incomplete argument --bogus/);
  });

  it('drain --wait returns once the node has exited', async () => {
    const node = await startNode();
    const t0 = Date.now();
    const r = await cli(['drain', '--wait', '--admin', `${node.host}:${node.adminPort}`], { timeout: 30000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /drained: the node has exited/);
    assert.ok(node.exited || await Promise.race([node.exit, sleep(500).then(() => null)]), 'node still running after drain --wait');
    assert.deepEqual(node.exited, { code: 0, sig: null });
    assert.ok(Date.now() - t0 < 15000);
    node.cleanup();
  });

  it('drain --wait gives up after --timeout with exit 1', async () => {
    // A server that accepts the drain and never goes away.
    const srv = http.createServer((req, res) => { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end('{"draining":true}'); });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const r = await cli(['drain', '--wait', '--timeout', '2', '--admin', `127.0.0.1:${srv.address().port}`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /still running after 2 s/);
    } finally { srv.close(); }
  });
});
