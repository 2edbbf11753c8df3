// SPDX-License-Identifier: Apache-2.0
// Helpers of the Firebase sync suites: node flags that point a node at the
// fake (fake_firebase.mjs), the store seeding tool, and checks that every
// acknowledged comment sits in the fake exactly at comments/<video>/<id>
// with its fields.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { BIN, waitFor } from './lib.mjs';
import { parseExposition, sample } from './prom.mjs';

export const FB_SECRET = 'fake-firebase-database-secret';

// Flags (and environment) for a node syncing to fb with the auth= secret;
// retries capped at retryMax ms (--firebase-retry-max-ms) so tests wait
// seconds, not the default 30 s, after a fault clears.
export function fbNode(fb, { retryMax = 1000, extra = [], env = {}, secret = FB_SECRET } = {}) {
  return {
    args: ['--firebase-url', fb.url, '--rate-limit', '100000/1', '--firebase-retry-max-ms', String(retryMax), ...extra],
    env: secret === null ? env : { PARLEY_FIREBASE_AUTH: secret, ...env },
  };
}

// The unix ms a comment id carries (its first 12 hex digits).
export const idMs = (id) => parseInt(id.slice(0, 12), 16);

// Waits until every ack ({id, content}) of `video` is in the fake, then
// checks each one's fields exactly.
export async function assertSynced(fb, video, acks, user, { timeout = 20000, what } = {}) {
  await waitFor(() => acks.every((a) => fb.comment(video, a.id)), {
    timeout, what: what || `${acks.length} comments of ${video} in Firebase`,
  }).catch((e) => {
    const missing = acks.filter((a) => !fb.comment(video, a.id)).map((a) => a.id);
    e.message += `\nmissing ${missing.length}: ${missing.slice(0, 5).join(', ')}; fake saw ${JSON.stringify(fb.stats().byStatus)}`;
    throw e;
  });
  for (const a of acks) {
    assert.deepEqual(fb.comment(video, a.id), { user_id: user, content: a.content, inserted_at: idMs(a.id) },
      `comments/${video}/${a.id}`);
  }
}

export async function syncOf(node) {
  const res = await fetch(`${node.admin}/v1/sync`);
  assert.equal(res.status, 200);
  return res.json();
}

export async function metricsOf(node) {
  const res = await fetch(`${node.admin}/metrics`);
  return parseExposition(await res.text());
}

export { sample };

// Waits until node's sync queue is empty (depth 0, nothing in flight).
export function drained(node, timeout = 20000) {
  return waitFor(async () => {
    const s = await syncOf(node);
    return s.queue_depth === 0 && s.in_flight === 0 ? s : false;
  }, { timeout, what: `${node.name}'s sync queue empty` });
}

// parley-seed-store, built next to the parley binary under test.
export const SEED = path.resolve(path.dirname(BIN), '../tests/e2e/parley-seed-store');

// Appends [video, user, content] rows to the store in dir as origin;
// resolves with the stored comments [{id, video_id, inserted_at, seq}].
export function seedStore(dir, origin, rows) {
  return new Promise((resolve, reject) => {
    const p = spawn(SEED, [dir, origin], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) { reject(new Error(`seed-store exited ${code}: ${err}`)); return; }
      resolve(out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)));
    });
    p.stdin.end(rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  });
}
