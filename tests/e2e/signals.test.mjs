// SPDX-License-Identifier: Apache-2.0
// Signals, logs and secret files as an operator uses them: SIGHUP reopens
// a rotated log file and reloads the JWT secrets, the admin token and the
// Firebase token (each logged, a broken file keeping the old value);
// SIGUSR1/SIGUSR2 never kill the node; JSON and logfmt lines parse;
// repeated refusals are summarised per second with a count; JWT rotation
// with several secrets and kid; `parley token` never invents a secret.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import {
  writeFileSync, readFileSync, renameSync, mkdtempSync, rmSync, chmodSync, existsSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  BIN, startNode, stopCleanNow, rawOpen, rawHeartbeat, raw, token, waitFor, sleep, httpGet,
} from './lib.mjs';
import { parseExposition, sample } from './prom.mjs';

function write(file, text) {
  writeFileSync(file, text);
  chmodSync(file, 0o600);
  return file;
}

function run(args, env = {}) {
  return new Promise((resolve) => {
    const p = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('exit', (code) => resolve({ code, out, err }));
  });
}

// Resolves with the upgrade's HTTP status: 101 or the refusal's.
async function upgradeStatus(node, tok) {
  const ws = raw(node, { query: `vsn=2.0.0&token=${tok}` });
  ws.on('error', () => {});
  try {
    await ws.opened;
    ws.close();
    return 101;
  } catch (e) {
    ws.terminate();
    return e.status;
  }
}

describe('SIGHUP', () => {
  let dir;
  let node;
  let logFile;
  let keys;
  let adminTok;
  const secA = 'secret-a-0123456789abcdef0123456789';
  const secB = 'secret-b-0123456789abcdef0123456789';
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'parley-hup-'));
    logFile = path.join(dir, 'parley.log');
    keys = write(path.join(dir, 'jwt_keys'), `${secA}\n`);
    adminTok = write(path.join(dir, 'admin_token'), 'first-admin-token-0123456789\n');
    // lib passes --jwt-secret; the env twin of the file wins only if the
    // flag is absent, so these nodes get their secret through the file.
    node = await startNode({
      data: path.join(dir, 'data'),
      env: { PARLEY_JWT_SECRET_FILE: keys },
      args: ['--log-file', logFile, '--admin-token-file', adminTok],
      noSecretFlag: true,
    });
  });
  after(async () => { await stopCleanNow(node, assert); rmSync(dir, { recursive: true, force: true }); });
  // Sends SIGHUP and waits for `re` in what the log file gets after it.
  const hup = async (re, what) => {
    const from = readFileSync(logFile, 'utf8').length;
    node.proc.kill('SIGHUP');
    await waitFor(() => re.test(readFileSync(logFile, 'utf8').slice(from)), { what });
  };

  it('reopens a rotated log file', async () => {
    await waitFor(() => existsSync(logFile) && /BRK-START/.test(readFileSync(logFile, 'utf8')), { what: 'log file written' });
    assert.equal(node.logs.includes('BRK-START'), false, 'logs went to stderr instead of the file');
    renameSync(logFile, `${logFile}.1`);
    node.proc.kill('SIGHUP');
    await waitFor(() => existsSync(logFile) && /log file .* reopened/.test(readFileSync(logFile, 'utf8')),
      { what: 'new log file after SIGHUP' });
    assert.match(readFileSync(`${logFile}.1`, 'utf8'), /\[BRK-SIGNAL\] SIGHUP: reopening the log and reloading secret files/);
  });

  it('reloads the JWT secrets: rotation without refusing tokens already out', async () => {
    const tA = token('u1', { secret: secA });
    const tB = token('u1', { secret: secB });
    assert.equal(await upgradeStatus(node, tA), 101);
    assert.equal(await upgradeStatus(node, tB), 403);
    // Step 1: the new secret signs, the old one still verifies.
    write(keys, `# rotated\n${secB}\n${secA}\n`);
    await hup(/JWT secrets reloaded from .*jwt_keys: 2 secret\(s\)/, 'reload logged');
    assert.equal(await upgradeStatus(node, tA), 101);
    assert.equal(await upgradeStatus(node, tB), 101);
    // `parley token` with the same file signs with the first secret.
    const minted = await run(['token', '--user', 'u2', '--jwt-secret-file', keys]);
    assert.equal(minted.code, 0, minted.err);
    assert.equal(await upgradeStatus(node, minted.out.trim()), 101);
    const check = token('u2', { secret: secB, exp: JSON.parse(Buffer.from(minted.out.split('.')[1], 'base64url')).exp });
    assert.equal(minted.out.trim().split('.')[2], check.split('.')[2], 'minted with the first secret');
    // Step 2: the old secret is retired.
    write(keys, `${secB}\n`);
    await hup(/jwt_keys: 1 secret\(s\)/, 'second reload');
    assert.equal(await upgradeStatus(node, tA), 403);
    assert.equal(await upgradeStatus(node, tB), 101);
    // A broken file is refused, logged, and the current secrets stay.
    write(keys, '# nothing here\n');
    await hup(/JWT secrets not reloaded, keeping the current ones: .*holds no secret/, 'refused reload logged');
    assert.equal(await upgradeStatus(node, tB), 101);
    write(keys, `${secB}\n`);
  });

  it('honours kid: a token naming a key is checked against that key', async () => {
    write(keys, `kid=new ${secB}\nkid=old ${secA}\n`);
    await hup(/jwt_keys: 2 secret\(s\), signing fingerprint/, 'kid reload');
    const withKid = (kid, secret) => {
      const b64 = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
      const h = b64({ alg: 'HS256', typ: 'JWT', kid });
      const p = b64({ sub: 'k', exp: Math.floor(Date.now() / 1000) + 60 });
      return `${h}.${p}.${createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url')}`;
    };
    assert.equal(await upgradeStatus(node, withKid('old', secA)), 101);
    assert.equal(await upgradeStatus(node, withKid('new', secB)), 101);
    assert.equal(await upgradeStatus(node, withKid('new', secA)), 403, 'kid selects its key only');
    assert.equal(await upgradeStatus(node, withKid('nope', secA)), 403);
    const minted = await run(['token', '--user', 'k', '--jwt-secret-file', keys]);
    const hdr = JSON.parse(Buffer.from(minted.out.split('.')[0], 'base64url'));
    assert.equal(hdr.kid, 'new');
    write(keys, `${secB}\n`);
    await hup(/jwt_keys: 1 secret\(s\)/, 'back to one');
  });

  it('reloads the admin token', async () => {
    const a = (tok) => fetch(`${node.admin}/v1/leader`, { headers: { Authorization: `Bearer ${tok}` } }).then((r) => r.status);
    assert.equal(await a('first-admin-token-0123456789'), 200);
    write(adminTok, 'second-admin-token-0123456789\n');
    await hup(/admin token reloaded from/, 'admin token reload');
    assert.equal(await a('second-admin-token-0123456789'), 200);
    assert.equal(await a('first-admin-token-0123456789'), 401);
    write(adminTok, 'short\n');
    await hup(/admin token not reloaded, keeping the current one: .*at least 16/, 'short token refused');
    assert.equal(await a('second-admin-token-0123456789'), 200);
  });

  it('SIGUSR1 and SIGUSR2 are logged and ignored', async () => {
    const ws = await rawOpen(node, { user: 'usr', query: `vsn=2.0.0&token=${token('usr', { secret: secB })}` });
    for (const sig of ['SIGUSR1', 'SIGUSR2', 'SIGUSR1']) {
      node.proc.kill(sig);
      await sleep(100);
    }
    await rawHeartbeat(ws);
    assert.equal(node.exited, null);
    const log = readFileSync(logFile, 'utf8');
    assert.match(log, /\[BRK-SIGNAL\] SIGUSR1 ignored/);
    assert.match(log, /\[BRK-SIGNAL\] SIGUSR2 ignored/);
    ws.close();
  });
});

describe('log formats and summaries', () => {
  it('--log-format json: one object per line', async () => {
    const node = await startNode({ args: ['--log-format', 'json'] });
    await stopCleanNow(node, assert);
    const lines = node.logs.trim().split('\n').filter((l) => !/^(=|\s|SUMMARY|Direct|Indirect)/.test(l));
    assert.ok(lines.length >= 4, node.logs);
    for (const l of lines) {
      const o = JSON.parse(l);
      assert.deepEqual(Object.keys(o), ['ts', 'level', 'node', 'id', 'msg'], l);
      assert.match(o.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(o.node, node.name);
    }
    assert.ok(lines.some((l) => JSON.parse(l).id === 'BRK-START'));
  });

  it('--log-format logfmt: key=value pairs', async () => {
    const node = await startNode({ args: ['--log-format', 'logfmt'] });
    await stopCleanNow(node, assert);
    const lines = node.logs.trim().split('\n').filter((l) => l.startsWith('ts='));
    assert.ok(lines.length >= 4, node.logs);
    for (const l of lines) {
      assert.match(l, /^ts=\S+ level=(error|warn|notice|info|debug) node="[^"]*" id=\S+ msg="(\\.|[^"\\])*"$/, l);
    }
    const bad = await run(['serve', '--log-format', 'xml']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--log-format: unknown format "xml"/);
  });

  it('a burst of refused upgrades is summarised per second with a count', async () => {
    const node = await startNode();
    try {
      const n = 60;
      await Promise.all(Array.from({ length: n }, () => upgradeStatus(node, 'not-a-token')));
      // The count is written by the 1 s sweep once the second is over.
      await waitFor(() => /\[BRK-REFUSED\] \.\.\. and \d+ more like this/.test(node.logs), { what: 'summary line' });
      await sleep(1200);
      const lines = node.logs.split('\n').filter((l) => /\[BRK-REFUSED\]/.test(l));
      const full = lines.filter((l) => /upgrade from .* refused/.test(l)).length;
      const more = lines.map((l) => /and (\d+) more like this/.exec(l)).filter(Boolean).reduce((s, m) => s + Number(m[1]), 0);
      assert.ok(full <= 3, `${full} full lines for ${n} refusals:\n${lines.join('\n')}`);
      assert.equal(full + more, n, lines.join('\n'));
    } finally { await stopCleanNow(node, assert); }
  });
});

describe('JWT secret fingerprints between nodes', () => {
  it('a node with another signing secret is a loud warning at join, in /readyz and /metrics, until fixed', { timeout: 60000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-fp-'));
    const ka = write(path.join(dir, 'a_keys'), 'shared-secret-0123456789abcdef\n');
    const kb = write(path.join(dir, 'b_keys'), 'other-secret-0123456789abcdef\n');
    const a = await startNode({ name: 'fa', noSecretFlag: true, env: { PARLEY_JWT_SECRET_FILE: ka } });
    const b = await startNode({ name: 'fb', host: '127.0.0.2', noSecretFlag: true, join: [a.bus], env: { PARLEY_JWT_SECRET_FILE: kb } });
    const gauge = async (n) => sample(parseExposition(await (await fetch(`${n.admin}/metrics`)).text()), 'parley_jwt_secret_mismatched_peers');
    try {
      await waitFor(() => /\[CLU-SECRETMISMATCH\] node fb signs client tokens with a different JWT secret/.test(a.logs) &&
        /\[CLU-SECRETMISMATCH\] node fa signs/.test(b.logs), { what: 'mismatch logged on both nodes' });
      // The fingerprint, never the secret, crosses the bus and the logs.
      assert.doesNotMatch(a.logs + b.logs, /other-secret|shared-secret/);
      const r = await httpGet(`${a.http}/readyz`);
      assert.equal(r.status, 200);
      assert.match(r.text, /^ready\nwarning: 1 peer\(s\) sign client tokens with another JWT secret: fb\n$/);
      assert.equal(await gauge(a), 1);
      assert.equal(await gauge(b), 1);
      // Fix b's file and reload it: the warning clears on both sides.
      write(kb, 'shared-secret-0123456789abcdef\n');
      b.proc.kill('SIGHUP');
      await waitFor(async () => (await gauge(a)) === 0 && (await gauge(b)) === 0, { what: 'mismatch cleared' });
      assert.match(a.logs, /\[CLU-SECRETMATCH\] node fb now signs client tokens with the same JWT secret/);
      assert.equal((await httpGet(`${a.http}/readyz`)).text, 'ready\n');
    } finally {
      await stopCleanNow(b, assert);
      await stopCleanNow(a, assert);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the data-dir secret', () => {
  it('is generated once; a SIGHUP after it was deleted keeps it and makes no new one', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-dd-'));
    const data = path.join(dir, 'data');
    const node = await startNode({ noSecretFlag: true, data });
    try {
      const f = path.join(data, 'jwt_secret');
      const secret = readFileSync(f, 'utf8').trim();
      assert.match(secret, /^[0-9a-f]{64}$/);
      const tok = token('dd', { secret });
      assert.equal(await upgradeStatus(node, tok), 101);
      rmSync(f);
      node.proc.kill('SIGHUP');
      await waitFor(() => /JWT secrets not reloaded, keeping the current ones: .*jwt_secret/.test(node.logs), { what: 'reload refused' });
      assert.equal(existsSync(f), false, 'a new secret was generated on SIGHUP');
      assert.equal(await upgradeStatus(node, tok), 101);
    } finally {
      await stopCleanNow(node, assert);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('secrets on the command line and `parley token`', () => {
  it('a secret given as a flag is warned about; the environment is not', async () => {
    const flagged = await startNode();
    await stopCleanNow(flagged, assert);
    assert.match(flagged.logs, /\[BRK-SECRETARGV\] a secret was given as a command-line flag/);
    const envd = await startNode({ noSecretFlag: true, env: { PARLEY_JWT_SECRET: 'from-the-environment-0123456789' } });
    await stopCleanNow(envd, assert);
    assert.doesNotMatch(envd.logs, /BRK-SECRETARGV/);
  });

  it('fails clearly without a secret and never creates the data dir', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-tok-'));
    try {
      const env = { PARLEY_JWT_SECRET: '', PARLEY_JWT_SECRET_FILE: '', PARLEY_DATA: '' };
      const none = await run(['token', '--user', 'a', '--data', path.join(dir, 'nonexistent')], env);
      assert.equal(none.code, 1);
      assert.match(none.err, /no JWT secret: .*nonexistent\/jwt_secret does not exist .*--jwt-secret-file/);
      assert.equal(none.out, '');
      assert.equal(existsSync(path.join(dir, 'nonexistent')), false, '--data was created');
      // In the default ./data of an empty working directory: same.
      const cwd = await new Promise((resolve) => {
        const p = spawn(BIN, ['token', '--user', 'a'], { cwd: dir, env: { ...process.env, ...env } });
        let err = '';
        p.stderr.on('data', (d) => { err += d; });
        p.on('exit', (code) => resolve({ code, err }));
      });
      assert.equal(cwd.code, 1);
      assert.equal(existsSync(path.join(dir, 'data')), false, './data was created');
      // The data dir of a node that has generated its secret works.
      const node = await startNode({ noSecretFlag: true, data: path.join(dir, 'nd'), env });
      try {
        const ok = await run(['token', '--user', 'a', '--data', path.join(dir, 'nd')], env);
        assert.equal(ok.code, 0, ok.err);
        assert.equal(await upgradeStatus(node, ok.out.trim()), 101);
      } finally { await stopCleanNow(node, assert); }
      const missing = await run(['token', '--user', 'a', '--jwt-secret-file', path.join(dir, 'nope')], env);
      assert.equal(missing.code, 1);
      assert.match(missing.err, /cannot open .*nope/);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });
});
