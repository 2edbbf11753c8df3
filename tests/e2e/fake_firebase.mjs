// SPDX-License-Identifier: Apache-2.0
// A fake Firebase Realtime Database REST server for the sync tests and the
// benchmark: serves /<path>.json (PATCH multi-path updates, PUT, GET),
// checks auth (?auth=SECRET, or a Bearer token it issued), issues tokens at
// /token after verifying the RS256 JWT-bearer assertion with the service
// account's public key, refuses keys Firebase refuses, and can be told to
// answer 503 or 429 (with Retry-After), 401 (tokens expired), to hang, to
// be slow, or to refuse connections for a while. Every write is recorded:
// how many times each path was written (duplicates) and when it first was.
//
// In a test:   const fb = await startFakeFirebase({ secret: 's' });
// Standalone:  node fake_firebase.mjs --port 9000 [--delay 100] [--secret S]
//              control with POST /__control {"delay": 100, ...}, read
//              GET /__stats (the benchmark runs it in its own process).
import { createServer } from 'node:http';
import { generateKeyPairSync, createVerify, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';

export const SCOPES = ['https://www.googleapis.com/auth/firebase.database',
  'https://www.googleapis.com/auth/userinfo.email'];
const CLIENT_EMAIL = 'parley-test@parley-e2e.iam.gserviceaccount.com';

// Keys Firebase refuses: . $ # [ ] / and ASCII control characters, or
// longer than 768 bytes, or empty.
export function badKey(k) {
  // eslint-disable-next-line no-control-regex
  return k.length === 0 || Buffer.byteLength(k) > 768 || /[.$#[\]/\x00-\x1f\x7f]/.test(k);
}

// The key parley writes for a video id (docs/protocol.md): the bytes
// Firebase refuses and '%' percent-encoded (upper-case hex).
export function encodeKey(id) {
  const bytes = Buffer.from(id, 'utf8');
  let out = '';
  let run = [];
  const flush = () => { if (run.length) { out += Buffer.from(run).toString('utf8'); run = []; } };
  for (const b of bytes) {
    if (b < 0x20 || b === 0x7f || '.$#[]/%'.includes(String.fromCharCode(b))) {
      flush();
      out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    } else {
      run.push(b);
    }
  }
  flush();
  return out;
}

function b64urlJson(s) {
  return JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
}

export async function startFakeFirebase(opts = {}) {
  const fb = {
    data: {},
    secret: opts.secret,            // accepted as ?auth=
    tokenTtl: opts.tokenTtl ?? 3600, // seconds, for issued tokens
    delayMs: opts.delayMs ?? 0,
    tokens: new Map(),              // token -> expiry ms
    tokensIssued: 0,
    tokenRequests: [],              // {ok, reason}
    requests: [],                   // {method, path, status, t, n, auth}
    writes: new Map(),              // path -> count
    firstAt: new Map(),             // path -> ms of first write
    faults: [],                     // pending {status, count|until, retryAfter}
    hangs: [],                      // requests held without an answer
    hangUntil: 0,
    hangApply: false,
    rejectKey: null,                // (key) => true: answer 400 to the PATCH
    sockets: new Set(),
    keyPair: null,
  };
  if (opts.serviceAccount !== false) {
    fb.keyPair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  }

  const answer = (res, status, body, headers = {}) => {
    const text = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
    res.end(text);
  };

  const checkAuth = (req, url) => {
    if (fb.secret === undefined && !fb.keyPair) return null;
    const a = url.searchParams.get('auth');
    if (a !== null) return a === fb.secret ? 'secret' : 'bad';
    const h = req.headers.authorization || '';
    const m = /^Bearer (.+)$/.exec(h);
    if (!m) return 'none';
    const exp = fb.tokens.get(m[1]);
    if (exp === undefined) return 'bad';
    return exp > Date.now() ? 'token' : 'expired';
  };

  const issueToken = (body) => {
    const p = new URLSearchParams(body);
    const fail = (reason) => { fb.tokenRequests.push({ ok: false, reason }); return { status: 400, body: { error: 'invalid_grant', error_description: reason } }; };
    if (p.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return fail('grant_type');
    const parts = (p.get('assertion') || '').split('.');
    if (parts.length !== 3) return fail('assertion shape');
    let header, claims;
    try { header = b64urlJson(parts[0]); claims = b64urlJson(parts[1]); } catch { return fail('assertion json'); }
    if (header.alg !== 'RS256') return fail('alg');
    const v = createVerify('RSA-SHA256');
    v.update(`${parts[0]}.${parts[1]}`);
    if (!v.verify(fb.keyPair.publicKey, Buffer.from(parts[2], 'base64url'))) return fail('signature');
    const now = Math.floor(Date.now() / 1000);
    if (claims.iss !== CLIENT_EMAIL) return fail('iss');
    if (claims.aud !== fb.tokenUri) return fail('aud');
    const scopes = String(claims.scope || '').split(' ');
    if (!SCOPES.every((s) => scopes.includes(s))) return fail('scope');
    if (!(claims.exp > now) || claims.iat > now + 60 || claims.exp - claims.iat > 3600) return fail('exp/iat');
    const tok = `ya29.fake-${++fb.tokensIssued}-${randomBytes(8).toString('hex')}`;
    fb.tokens.set(tok, Date.now() + fb.tokenTtl * 1000);
    fb.tokenRequests.push({ ok: true });
    return { status: 200, body: { access_token: tok, expires_in: fb.tokenTtl, token_type: 'Bearer' } };
  };

  const nodeAt = (segs, create) => {
    let n = fb.data;
    for (const s of segs) {
      if (n[s] === undefined || typeof n[s] !== 'object' || n[s] === null) {
        if (!create) return undefined;
        n[s] = {};
      }
      n = n[s];
    }
    return n;
  };

  const segsOf = (p) => p.split('/').filter((s) => s !== '');

  // Firebase applies a multi-path update atomically: all or nothing.
  const patch = (base, body) => {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      return { status: 400, body: { error: 'Invalid data; couldn\'t parse JSON object.' } };
    }
    for (const k of Object.keys(body)) {
      const segs = k.split('/');
      if (segs.some(badKey)) return { status: 400, body: { error: `Invalid key in path ${k}` } };
      if (fb.rejectKey && fb.rejectKey(k, body[k])) {
        return { status: 400, body: { error: `Invalid data for ${k}: refused by a test rule` } };
      }
    }
    const now = Date.now();
    for (const [k, v] of Object.entries(body)) {
      const segs = [...base, ...segsOf(k)];
      const parent = nodeAt(segs.slice(0, -1), true);
      parent[segs[segs.length - 1]] = v;
      const full = segs.join('/');
      fb.writes.set(full, (fb.writes.get(full) || 0) + 1);
      if (!fb.firstAt.has(full)) fb.firstAt.set(full, now);
    }
    return { status: 200, body };
  };

  const takeFault = () => {
    const now = Date.now();
    while (fb.faults.length) {
      const f = fb.faults[0];
      if (f.until !== undefined && f.until <= now) { fb.faults.shift(); continue; }
      if (f.count !== undefined) {
        if (f.count <= 0) { fb.faults.shift(); continue; }
        f.count--;
      }
      return f;
    }
    return null;
  };

  const handle = async (req, res, body) => {
    const url = new URL(req.url, 'http://x');
    const t = Date.now();
    const log = (status, n = 0, auth = null) => fb.requests.push({ method: req.method, path: url.pathname, status, t, n, auth });
    if (url.pathname === '/__control' && req.method === 'POST') {
      const c = JSON.parse(body || '{}');
      fb.control(c);
      answer(res, 200, { ok: true });
      return;
    }
    if (url.pathname === '/__stats') {
      answer(res, 200, fb.stats());
      return;
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      if (!fb.keyPair) { answer(res, 404, { error: 'no service account' }); return; }
      const r = issueToken(body);
      answer(res, r.status, r.body);
      return;
    }
    if (!url.pathname.endsWith('.json')) { answer(res, 404, { error: 'not found' }); return; }
    if (fb.hangUntil > t && !fb.hangApply) { fb.hangs.push(res); log('hang'); return; }
    const f = req.method === 'PATCH' || req.method === 'PUT' ? takeFault() : null;
    if (f && f.hang) { fb.hangs.push(res); log('hang'); return; }
    const auth = checkAuth(req, url);
    if (auth === 'bad' || auth === 'none') { log(401, 0, auth); answer(res, 401, { error: 'Permission denied' }); return; }
    if (auth === 'expired') { log(401, 0, auth); answer(res, 401, { error: 'Auth token is expired' }); return; }
    if (f) {
      log(f.status, 0, auth);
      answer(res, f.status, { error: `injected ${f.status}` }, f.retryAfter !== undefined ? { 'Retry-After': String(f.retryAfter) } : {});
      return;
    }
    if (fb.delayMs > 0) await new Promise((r) => setTimeout(r, fb.delayMs));
    const base = segsOf(url.pathname.slice(0, -'.json'.length));
    if (req.method === 'GET') {
      const n = base.length ? nodeAt(base.slice(0, -1), false)?.[base[base.length - 1]] : fb.data;
      log(200, 0, auth);
      answer(res, 200, n === undefined ? null : n);
      return;
    }
    if (req.method === 'PATCH') {
      let v;
      try { v = JSON.parse(body); } catch { log(400); answer(res, 400, { error: 'Invalid data; couldn\'t parse JSON object, array, or value.' }); return; }
      const r = patch(base, v);
      if (fb.hangUntil > t) { fb.hangs.push(res); log('hang', r.status === 200 ? Object.keys(v).length : 0, auth); return; }
      log(r.status, r.status === 200 ? Object.keys(v).length : 0, auth);
      if (r.status === 200 && url.searchParams.get('print') === 'silent') { res.writeHead(204); res.end(); return; }
      answer(res, r.status, r.body);
      return;
    }
    log(405);
    answer(res, 405, { error: 'method not allowed' });
  };

  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => { handle(req, res, Buffer.concat(chunks).toString('utf8')).catch((e) => { res.writeHead(500); res.end(String(e)); }); });
  });
  server.keepAliveTimeout = 60000;
  server.on('connection', (s) => { fb.sockets.add(s); s.on('close', () => fb.sockets.delete(s)); });
  const host = opts.host || '127.0.0.1';
  await new Promise((r) => server.listen(opts.port || 0, host, r));
  const port = server.address().port;
  fb.port = port;
  fb.url = `http://${host}:${port}`;
  fb.tokenUri = `${fb.url}/token`;

  // ---- control ----
  // fail(status, {count | ms, retryAfter}): the next writes get `status`.
  fb.fail = (status, { count, ms, retryAfter } = {}) => {
    fb.faults.push({ status, count, until: ms !== undefined ? Date.now() + ms : undefined, retryAfter });
  };
  // hang({count | ms, apply}): writes get no answer (held until
  // release()); with apply (and ms), they are written first, as when an
  // answer is lost on the way back.
  fb.hang = ({ count, ms, apply = false } = {}) => {
    if (ms !== undefined) { fb.hangUntil = Date.now() + ms; fb.hangApply = apply; } else fb.faults.push({ hang: true, count: count ?? 1 });
  };
  fb.release = () => { for (const r of fb.hangs.splice(0)) { r.destroy(); } fb.hangUntil = 0; fb.hangApply = false; };
  fb.expireTokens = () => { for (const k of fb.tokens.keys()) fb.tokens.set(k, 0); };
  // down(ms): refuse every connection for ms (the port is closed).
  fb.down = async (ms) => {
    await new Promise((r) => { server.close(() => r()); for (const s of fb.sockets) s.destroy(); });
    await new Promise((r) => setTimeout(r, ms));
    await new Promise((r, j) => { server.once('error', j); server.listen(port, host, () => { server.off('error', j); r(); }); });
  };
  fb.control = (c) => {
    if (c.delay !== undefined) fb.delayMs = c.delay;
    if (c.fail) fb.fail(c.fail.status, c.fail);
    if (c.reset) { fb.data = {}; fb.requests = []; fb.writes = new Map(); fb.firstAt = new Map(); }
  };
  fb.stats = () => {
    const byStatus = {};
    for (const r of fb.requests) byStatus[r.status] = (byStatus[r.status] || 0) + 1;
    let dup = 0;
    for (const c of fb.writes.values()) dup += c - 1;
    return { requests: fb.requests.length, byStatus, paths: fb.writes.size, duplicates: dup, firstAt: Object.fromEntries(fb.firstAt), tokensIssued: fb.tokensIssued };
  };
  fb.duplicates = () => { let d = 0; for (const c of fb.writes.values()) d += c - 1; return d; };
  // The comment at comments/<video>/<id>, as stored.
  fb.comment = (video, id) => fb.data.comments?.[encodeKey(video)]?.[id];
  fb.count = () => { let n = 0; for (const v of Object.values(fb.data.comments || {})) n += Object.keys(v).length; return n; };
  // Writes a service-account key file for this fake; returns its path.
  fb.writeCredentials = (path, overrides = {}) => {
    const key = fb.keyPair.privateKey.export({ type: 'pkcs8', format: 'pem' });
    const doc = { type: 'service_account', project_id: 'parley-e2e', private_key_id: 'k1', private_key: key,
      client_email: CLIENT_EMAIL, token_uri: fb.tokenUri, ...overrides };
    for (const [k, v] of Object.entries(doc)) if (v === undefined) delete doc[k];
    writeFileSync(path, JSON.stringify(doc), { mode: 0o600 });
    return path;
  };
  fb.close = () => new Promise((r) => { fb.release(); server.close(() => r()); for (const s of fb.sockets) s.destroy(); });
  return fb;
}

// Standalone: node fake_firebase.mjs --port P [--delay MS] [--secret S]
if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (n, d) => { const i = process.argv.indexOf(`--${n}`); return i > 0 ? process.argv[i + 1] : d; };
  const fb = await startFakeFirebase({ port: Number(arg('port', 0)), delayMs: Number(arg('delay', 0)),
    secret: arg('secret'), serviceAccount: false });
  process.stdout.write(`${fb.url}\n`);
}
