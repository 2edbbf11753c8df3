// SPDX-License-Identifier: Apache-2.0
// The Firebase sync on one node against a fake Firebase REST server
// (fake_firebase.mjs): every acknowledged comment lands exactly at
// comments/<video>/<id> with its fields, in batches; auth= and service
// accounts (RS256 assertion verified by the fake, tokens refreshed before
// they expire and after a 401); 503, 429 with Retry-After, a slow and a
// hanging database, an outage of a full minute; a 400 on one comment
// parks it alone and `parley sync --retry-parked` sends it again; odd
// video ids are written under percent-encoded keys; kill -9 mid-queue
// resumes from the persisted mark. The three-node cases are in
// firebase_cluster.test.mjs.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startNode, stopCleanNow, socket, join, push, waitFor, sleep, BIN } from './lib.mjs';
import { postMany, uniq } from './comments_lib.mjs';
import { cli } from './cluster_lib.mjs';
import { startFakeFirebase, encodeKey } from './fake_firebase.mjs';
import {
  FB_SECRET, fbNode, assertSynced, syncOf, metricsOf, sample, drained, seedStore, idMs,
} from './firebase_lib.mjs';
import { spawn } from 'node:child_process';

async function poster(node, video, user = 'alice') {
  const s = socket(node, user);
  const ch = s.channel(`comments:${video}`, {});
  await join(ch);
  return { s, ch };
}

describe('Firebase sync, one node', () => {
  it('every acknowledged comment reaches comments/<video>/<id> with its fields, in few requests', async () => {
    const fb = await startFakeFirebase({ secret: FB_SECRET });
    const n = await startNode(fbNode(fb));
    try {
      const v1 = uniq('v');
      const v2 = uniq('w');
      const a = await poster(n, v1, 'alice');
      const b = await poster(n, v2, 'bob');
      const [acks1, acks2] = await Promise.all([
        postMany(a.ch, 300, { inFlight: 50, content: (i) => `hello "${i}" \\ é ✓ \u0001` }),
        postMany(b.ch, 200, { inFlight: 50 }),
      ]);
      await assertSynced(fb, v1, acks1, 'alice');
      await assertSynced(fb, v2, acks2, 'bob');
      assert.equal(fb.count(), 500);
      assert.equal(fb.duplicates(), 0, 'no path written twice');
      const writes = fb.requests.filter((r) => r.method === 'PATCH');
      assert.ok(writes.every((r) => r.path === '/comments.json' && r.auth === 'secret'), JSON.stringify(writes[0]));
      // Batching: far fewer requests than comments.
      assert.ok(writes.length <= 60, `${writes.length} requests for 500 comments`);
      const st = await drained(n);
      assert.equal(st.enabled, true);
      assert.equal(st.is_leader, true);
      assert.equal(st.auth, 'auth_token');
      assert.equal(st.comments_synced, 500);
      assert.equal(st.parked, 0);
      assert.equal(st.oldest_pending_age_s, null);
      assert.ok(st.last_success > Date.now() - 60000);
      // One origin (its name is the store's business), all of it synced.
      assert.equal(st.origins.length, 1);
      assert.deepEqual({ ...st.origins[0], origin: undefined }, { origin: undefined, held: 500, synced: 500, sent: 500 });
      const m = await metricsOf(n);
      assert.equal(sample(m, 'parley_firebase_comments_synced_total'), 500);
      assert.equal(sample(m, 'parley_firebase_requests_total', { status: '2xx' }), writes.length);
      assert.equal(sample(m, 'parley_firebase_batches_total'), writes.length);
      assert.equal(sample(m, 'parley_firebase_queue_depth'), 0);
      assert.equal(sample(m, 'parley_firebase_lag_seconds'), 0);
      assert.ok(sample(m, 'parley_firebase_sync_seconds_count') === 500);
      // The CLI shows the same queue.
      const out = await cli(['sync', '--admin', `${n.host}:${n.adminPort}`]);
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stdout, /queue_depth\s+0/);
      assert.match(out.stdout, new RegExp(`${st.origins[0].origin}\\s+500\\s+500\\s+500`));
      const js = await cli(['sync', '--json', '--admin', `${n.host}:${n.adminPort}`]);
      assert.equal(JSON.parse(js.stdout).comments_synced, 500);
      a.s.disconnect();
      b.s.disconnect();
    } finally {
      await stopCleanNow(n, assert);
      await fb.close();
    }
  });

  it('a node without --firebase-url says the sync is off and sends nothing', async () => {
    const n = await startNode({});
    try {
      const st = await syncOf(n);
      assert.equal(st.enabled, false);
      assert.match(st.reason, /--firebase-url/);
    } finally {
      await stopCleanNow(n, assert);
    }
  });

  it('503s and 429s are retried with backoff, Retry-After honoured, nothing lost or parked', async () => {
    const fb = await startFakeFirebase({ secret: FB_SECRET });
    const n = await startNode(fbNode(fb, { retryMax: 2000 }));
    try {
      const v = uniq('v');
      const a = await poster(n, v);
      fb.fail(503, { count: 3 });
      const first = await postMany(a.ch, 50);
      await assertSynced(fb, v, first, 'alice');
      // 429 with Retry-After: 2 s, longer than any backoff here.
      fb.fail(429, { count: 1, retryAfter: 2 });
      const second = await postMany(a.ch, 50, { content: (i) => `second ${i}` });
      await assertSynced(fb, v, second, 'alice');
      const pr = fb.requests.filter((r) => r.method === 'PATCH');
      const i429 = pr.findIndex((r) => r.status === 429);
      assert.ok(i429 >= 0 && pr[i429 + 1], 'a request after the 429');
      assert.ok(pr[i429 + 1].t - pr[i429].t >= 1900, `waited ${pr[i429 + 1].t - pr[i429].t} ms after Retry-After: 2`);
      const st = await drained(n);
      assert.equal(st.parked, 0);
      assert.ok(st.retries >= 4, `retries ${st.retries}`);
      assert.equal(st.requests['5xx'], 3);
      assert.equal(st.requests['429'], 1);
      assert.equal(fb.count(), 100);
      assert.match(n.logs, /BRK-FBRETRY.*HTTP 503/);
      a.s.disconnect();
    } finally {
      await stopCleanNow(n, assert);
      await fb.close();
    }
  });

  it('a slow database and a hanging one: requests time out, go again, and everything arrives', async () => {
    const fb = await startFakeFirebase({ secret: FB_SECRET });
    const n = await startNode(fbNode(fb, { extra: ['--firebase-timeout', '1'] }));
    try {
      const v = uniq('v');
      const a = await poster(n, v);
      fb.delayMs = 600; // slow but inside the timeout
      const slow = await postMany(a.ch, 40);
      await assertSynced(fb, v, slow, 'alice');
      fb.delayMs = 0;
      fb.hang({ count: 2 }); // no answer at all: the 1 s timeout fires
      const hung = await postMany(a.ch, 40, { content: (i) => `hung ${i}` });
      await assertSynced(fb, v, hung, 'alice');
      const st = await drained(n);
      assert.ok(st.requests.timeout >= 2, JSON.stringify(st.requests));
      assert.equal(st.parked, 0);
      a.s.disconnect();
    } finally {
      fb.release();
      await stopCleanNow(n, assert);
      await fb.close();
    }
  });

  it('an outage of a full minute (connections refused): the queue waits, reports, and delivers everything after', { timeout: 180000 }, async () => {
    const fb = await startFakeFirebase({ secret: FB_SECRET });
    // Retries capped at 5 s (--firebase-retry-max-ms): the default 30 s
    // would only lengthen the wait after the outage.
    const n = await startNode(fbNode(fb, { retryMax: 5000 }));
    try {
      const v = uniq('v');
      const a = await poster(n, v);
      const before = await postMany(a.ch, 20);
      await assertSynced(fb, v, before, 'alice');
      const outage = fb.down(60000);
      const during = [];
      for (let k = 0; k < 6; k++) {
        during.push(...await postMany(a.ch, 10, { content: (i) => `during ${k}.${i}` }));
        await sleep(5000);
      }
      const mid = await syncOf(n);
      assert.ok(mid.queue_depth >= 60, `depth ${mid.queue_depth}`);
      assert.ok(mid.oldest_pending_age_s >= 25, `oldest ${mid.oldest_pending_age_s}`);
      assert.ok(mid.requests.connection >= 3, JSON.stringify(mid.requests));
      const m = await metricsOf(n);
      assert.ok(sample(m, 'parley_firebase_lag_seconds') >= 25);
      await outage;
      const t0 = Date.now();
      await assertSynced(fb, v, during, 'alice', { timeout: 30000 });
      assert.ok(Date.now() - t0 < 15000, `took ${Date.now() - t0} ms after the outage`);
      const st = await drained(n);
      assert.equal(st.parked, 0);
      assert.equal(fb.count(), 80);
      a.s.disconnect();
    } finally {
      await stopCleanNow(n, assert);
      await fb.close();
    }
  });

  it('a 400 on one comment parks it alone, the rest go through; it is listed and retried on request', async () => {
    const fb = await startFakeFirebase({ secret: FB_SECRET });
    const n = await startNode(fbNode(fb));
    try {
      const v = uniq('v');
      const a = await poster(n, v);
      fb.rejectKey = (k, val) => val && val.content === 'REJECT ME';
      // Held back until all 40 are stored, so they go as one batch.
      fb.hang({ ms: 1500 });
      const acks = await postMany(a.ch, 40, { content: (i) => (i === 17 ? 'REJECT ME' : `fine ${i}`) });
      await sleep(1600);
      fb.release();
      const bad = acks.find((x) => x.content === 'REJECT ME');
      const good = acks.filter((x) => x !== bad);
      await assertSynced(fb, v, good, 'alice');
      const st = await waitFor(async () => { const s = await syncOf(n); return s.parked === 1 && s.queue_depth === 0 ? s : false; },
        { what: 'one parked' });
      assert.equal(fb.comment(v, bad.id), undefined);
      assert.ok(st.comments_synced >= 39);
      assert.equal((n.logs.match(/BRK-FBPARKED/g) || []).length, 1, 'logged once');
      assert.match(n.logs, new RegExp(`BRK-FBPARKED.*comments/${v}/${bad.id}.*HTTP 400`));
      const m = await metricsOf(n);
      assert.equal(sample(m, 'parley_firebase_parked_comments'), 1);
      assert.equal(sample(m, 'parley_firebase_parked_total'), 1);
      // Listed with its path and Firebase's answer.
      const listed = await (await fetch(`${n.admin}/v1/sync/parked`)).json();
      assert.equal(listed.parked, 1);
      assert.equal(listed.comments.length, 1);
      assert.equal(listed.comments[0].path, `comments/${v}/${bad.id}`);
      assert.equal(listed.comments[0].status, 400);
      assert.match(listed.comments[0].reason, /refused by a test rule/);
      const out = await cli(['sync', '--parked', '--admin', `${n.host}:${n.adminPort}`]);
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stdout, new RegExp(`parked\\s.*400\\s+comments/${v}/${bad.id}`));
      // Fixed: send it again.
      fb.rejectKey = null;
      const r = await cli(['sync', '--retry-parked', '--admin', `${n.host}:${n.adminPort}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^1 parked comments will be sent again/);
      await assertSynced(fb, v, [bad], 'alice');
      await waitFor(async () => (await syncOf(n)).parked === 0 && (await syncOf(n)).retrying === 0, { what: 'nothing parked' });
      assert.equal((await (await fetch(`${n.admin}/v1/sync/parked`)).json()).comments.length, 0);
      a.s.disconnect();
    } finally {
      fb.release();
      await stopCleanNow(n, assert);
      await fb.close();
    }
  });

  it('parked comments survive a restart', async () => {
    const fb = await startFakeFirebase({ secret: FB_SECRET });
    const data = mkdtempSync(path.join(os.tmpdir(), 'parley-fb-'));
    let n = await startNode({ ...fbNode(fb), data, name: 'pk1' });
    try {
      const v = uniq('v');
      const a = await poster(n, v);
      fb.rejectKey = (k, val) => val && val.content === 'NO';
      const acks = await postMany(a.ch, 3, { content: (i) => (i === 1 ? 'NO' : `ok ${i}`) });
      await waitFor(async () => (await syncOf(n)).parked === 1, { what: 'parked' });
      a.s.disconnect();
      await stopCleanNow(n, assert);
      fb.rejectKey = null;
      n = await startNode({ ...fbNode(fb), data, name: 'pk1' });
      const listed = await (await fetch(`${n.admin}/v1/sync/parked`)).json();
      assert.equal(listed.parked, 1);
      assert.equal(listed.comments[0].id, acks[1].id);
      assert.equal(listed.comments[0].status, 400);
      await fetch(`${n.admin}/v1/sync/retry`, { method: 'POST' });
      await assertSynced(fb, v, acks, 'alice');
    } finally {
      await stopCleanNow(n, assert);
      rmSync(data, { recursive: true, force: true });
      await fb.close();
    }
  });

  it('odd video ids are written under percent-encoded keys, reversibly, and block nothing', async () => {
    const fb = await startFakeFirebase({ secret: FB_SECRET });
    const data = mkdtempSync(path.join(os.tmpdir(), 'parley-fb-'));
    // Stored before any join rule: every byte Firebase refuses in a key,
    // our escape character, UTF-8 and the longest id.
    const odd = ['a.b', 'price$5', 'tag#1', 'arr[0]', 'x/y/z', '50%off', 'tab\there', 'bell\u0007',
      'del\u007f', 'café ✓', '%2E', 'v'.repeat(256), '.$#[]/%'.repeat(36).slice(0, 256)];
    try {
      const seeded = await seedStore(data, 'seeded-origin', odd.map((v, i) => [v, `u${i}`, `about ${v}`]));
      assert.equal(seeded.length, odd.length);
      const n = await startNode({ ...fbNode(fb), data, name: 'odd1' });
      try {
        await waitFor(() => fb.count() === odd.length, { what: 'odd ids in Firebase' });
        for (const [i, s] of seeded.entries()) {
          const key = encodeKey(odd[i]);
          assert.ok(Buffer.byteLength(key) <= 768, `key of ${i} fits`);
          assert.deepEqual(fb.data.comments[key]?.[s.id], { user_id: `u${i}`, content: `about ${odd[i]}`, inserted_at: s.inserted_at },
            `comments/${key}/${s.id}`);
          // Reversible: decoding the key gives the id back.
          assert.equal(decodeURIComponentBytes(key), odd[i]);
        }
        assert.equal(fb.data.comments['a%2Eb'] !== undefined, true);
        assert.equal(fb.data.comments['50%25off'] !== undefined, true);
        const st = await drained(n);
        assert.equal(st.parked, 0);
        // A client may still post to an ordinary video meanwhile.
        const a = await poster(n, 'plain-video');
        const acks = await postMany(a.ch, 5);
        await assertSynced(fb, 'plain-video', acks, 'alice');
        a.s.disconnect();
      } finally {
        await stopCleanNow(n, assert);
      }
    } finally {
      rmSync(data, { recursive: true, force: true });
      await fb.close();
    }
  });

  it('kill -9 mid-queue: the restarted node resumes from its persisted mark; duplicates bounded and counted', async () => {
    const fb = await startFakeFirebase({ secret: FB_SECRET });
    const data = mkdtempSync(path.join(os.tmpdir(), 'parley-fb-'));
    const opts = fbNode(fb, { extra: ['--firebase-batch', '50', '--firebase-max-inflight', '2'] });
    let n = await startNode({ ...opts, data, name: 'k1' });
    try {
      const v = uniq('v');
      const a = await poster(n, v);
      const acks1 = await postMany(a.ch, 200);
      await assertSynced(fb, v, acks1, 'alice');
      await drained(n);
      // Requests now reach the database, which writes them, but their
      // answers never come back: they are in flight when the node dies.
      fb.hang({ ms: 600000, apply: true });
      const acks2 = await postMany(a.ch, 300, { content: (i) => `second ${i}` });
      await waitFor(async () => (await syncOf(n)).in_flight === 2, { what: 'two requests in flight' });
      a.s.disconnect();
      await n.kill9();
      fb.release();
      const written = fb.count();
      assert.ok(written >= 300, `the two in-flight batches were written (${written})`);
      n = await startNode({ ...opts, data, name: 'k1' });
      await assertSynced(fb, v, acks2, 'alice');
      const st = await drained(n);
      // The restarted node sent the 300 from its persisted mark; at most
      // the two batches in flight (2 x 50) were sent twice, and counted.
      assert.equal(st.comments_synced, 300);
      assert.equal(fb.count(), 500);
      assert.ok(fb.duplicates() <= 100, `duplicates ${fb.duplicates()}`);
      assert.equal(st.resent, fb.duplicates(), 'every duplicate write counted');
      const m = await metricsOf(n);
      assert.equal(sample(m, 'parley_firebase_resent_comments_total'), fb.duplicates());
    } finally {
      await stopCleanNow(n, assert);
      rmSync(data, { recursive: true, force: true });
      await fb.close();
    }
  });
});

// Decodes %XX escapes byte-wise (the key of an id that is valid UTF-8).
function decodeURIComponentBytes(key) {
  const out = [];
  const b = Buffer.from(key, 'utf8');
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0x25) { out.push(parseInt(b.subarray(i + 1, i + 3).toString(), 16)); i += 2; } else out.push(b[i]);
  }
  return Buffer.from(out).toString('utf8');
}

describe('Firebase service accounts', () => {
  it('tokens come from an RS256 assertion the fake verifies, are refreshed before expiry and once after a 401', async () => {
    const fb = await startFakeFirebase({ tokenTtl: 8 });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-fb-'));
    const creds = fb.writeCredentials(path.join(dir, 'sa.json'));
    const n = await startNode(fbNode(fb, { secret: null, extra: ['--firebase-credentials', creds] }));
    try {
      const v = uniq('v');
      const a = await poster(n, v);
      const acks = await postMany(a.ch, 30);
      await assertSynced(fb, v, acks, 'alice');
      assert.ok(fb.requests.filter((r) => r.method === 'PATCH').every((r) => r.auth === 'token'));
      assert.equal(fb.tokenRequests.filter((t) => !t.ok).length, 0, JSON.stringify(fb.tokenRequests));
      // Refreshed before it expires (8 s: at about 6 s), with no 401.
      await waitFor(() => fb.tokensIssued >= 2, { timeout: 12000, what: 'a refresh before expiry' });
      const more = await postMany(a.ch, 10, { content: (i) => `later ${i}` });
      await assertSynced(fb, v, more, 'alice');
      assert.equal(fb.requests.filter((r) => r.status === 401).length, 0, 'no 401 before the expiry');
      // Revoked mid-run: one 401, one new token, the batch goes again.
      const issued = fb.tokensIssued;
      fb.expireTokens();
      const after = await postMany(a.ch, 10, { content: (i) => `revoked ${i}` });
      await assertSynced(fb, v, after, 'alice');
      assert.ok(fb.tokensIssued >= issued + 1);
      assert.ok(fb.requests.some((r) => r.status === 401 && r.auth === 'expired'));
      const st = await drained(n);
      assert.equal(st.auth, 'service_account');
      assert.equal(st.parked, 0);
      const m = await metricsOf(n);
      assert.ok(sample(m, 'parley_firebase_token_refreshes_total', { result: 'ok' }) >= 3);
      assert.ok(sample(m, 'parley_firebase_requests_total', { status: '401' }) >= 1);
      assert.match(n.logs, /BRK-FBTOKEN.*refused the access token \(401\)/);
      a.s.disconnect();
    } finally {
      await stopCleanNow(n, assert);
      rmSync(dir, { recursive: true, force: true });
      await fb.close();
    }
  });

  it('a missing, unreadable or malformed credentials file stops the start, naming the field', async () => {
    const fb = await startFakeFirebase({});
    const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-fb-'));
    const file = (name, text) => { const p = path.join(dir, name); writeFileSync(p, text, { mode: 0o600 }); return p; };
    const cases = [
      [path.join(dir, 'absent.json'), /--firebase-credentials: cannot open .*absent\.json/],
      [file('notjson.json', '{"client_email": '), /not a JSON object/],
      [file('array.json', '[1,2]'), /not a JSON object/],
      [fb.writeCredentials(path.join(dir, 'noemail.json'), { client_email: undefined }), /field "client_email" is missing/],
      [fb.writeCredentials(path.join(dir, 'nokey.json'), { private_key: undefined }), /field "private_key" is missing/],
      [fb.writeCredentials(path.join(dir, 'badkey.json'), { private_key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' }),
        /field "private_key" is not a PEM RSA private key/],
      [fb.writeCredentials(path.join(dir, 'nouri.json'), { token_uri: 7 }), /field "token_uri" is missing or not a non-empty string/],
      [fb.writeCredentials(path.join(dir, 'baduri.json'), { token_uri: 'ftp://x' }), /field "token_uri" is not an http\(s\) URL/],
    ];
    try {
      for (const [p, re] of cases) {
        const r = await run([...fbNode(fb, { secret: null }).args, '--firebase-credentials', p, '--data', path.join(dir, 'data'),
          '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--cluster-listen', 'tcp://127.0.0.1:0']);
        assert.notEqual(r.code, 0, `${p} must stop the start`);
        assert.match(r.stderr, re, p);
      }
      // Both kinds of credentials at once: refused too.
      const both = await run([...fbNode(fb).args, '--firebase-credentials', fb.writeCredentials(path.join(dir, 'ok.json')),
        '--firebase-auth', 'x', '--data', path.join(dir, 'data'), '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0',
        '--cluster-listen', 'tcp://127.0.0.1:0']);
      assert.notEqual(both.code, 0);
      assert.match(both.stderr, /not both/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await fb.close();
    }
  });
});

function run(args) {
  return new Promise((resolve) => {
    const p = spawn(BIN, ['serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    p.stdout.on('data', (d) => { stderr += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), 15000);
    p.on('close', (code) => { clearTimeout(t); resolve({ code, stderr }); });
  });
}
