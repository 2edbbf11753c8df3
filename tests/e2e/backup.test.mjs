// SPDX-License-Identifier: Apache-2.0
// Online backup and restore as docs/operations.md describes them: `parley
// backup --out FILE` while clients keep posting, then the file restored
// into a new node's data dir. The copy is one consistent snapshot: every
// comment acknowledged before the backup started is in it, each video's
// history is a prefix of the live node's, and a backup taken at rest
// restores the history exactly. A client that walks away mid-backup, or a
// second backup at once, harms nothing.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  copyFileSync, mkdtempSync, mkdirSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  BIN, startNode, stopCleanNow, socket, connected, join, sleep, rawOpen, rawHeartbeat,
} from './lib.mjs';
import { postMany, readHistory, uniq } from './comments_lib.mjs';
import { cli } from './cluster_lib.mjs';

const VIDEOS = 4;

async function histories(node, videos) {
  const s = socket(node, 'reader');
  await connected(s);
  const out = {};
  for (const v of videos) {
    out[v] = (await readHistory(s.channel(`comments:${v}`))).comments.map((c) => [c.id, c.user_id, c.content, c.inserted_at]);
  }
  s.disconnect();
  return out;
}

// Restores FILE into a fresh data dir as the docs say, and starts a node
// on it.
async function restore(file, dir, name) {
  const data = path.join(dir, name);
  mkdirSync(data, { recursive: true });
  copyFileSync(file, path.join(data, 'data.mdb'));
  return startNode({ name, data });
}

describe('backup and restore', () => {
  it('a backup taken under write load restores into a new node, consistent and complete', { timeout: 120000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-backup-'));
    const a = await startNode({ name: 'live', args: ['--rate-limit', '1000000/1'] });
    const videos = Array.from({ length: VIDEOS }, (_, i) => uniq(`bk${i}-`));
    const writers = [];
    let restored;
    try {
      // Some history first.
      for (let i = 0; i < VIDEOS; i++) {
        const s = socket(a, `w${i}`);
        await connected(s);
        const ch = s.channel(`comments:${videos[i]}`, {});
        await join(ch);
        writers.push({ s, ch });
        await postMany(ch, 150, { content: (k) => `before ${i}.${k} ${'x'.repeat(k % 50)}` });
      }
      // Then writers that keep going while the backup runs.
      let stop = false;
      const acked = [];
      const loops = writers.map(({ ch }, i) => (async () => {
        for (let k = 0; !stop; k += 20) {
          const acks = await postMany(ch, 20, { content: (j) => `during ${i}.${k + j}` });
          acked.push(...acks.map((x) => ({ ...x, at: Date.now() })));
        }
      })());
      await sleep(300);
      const startedAt = Date.now();
      const ackedBefore = new Set(acked.filter((x) => x.at < startedAt).map((x) => x.id));
      const ws = await rawOpen(a, { user: 'pinger' });
      const out = path.join(dir, 'live.mdb');
      const bk = cli(['backup', '--out', out, '--admin', `${a.host}:${a.adminPort}`], { timeout: 60000 });
      // The loop keeps answering while the copy runs.
      await rawHeartbeat(ws, 1000);
      const r = await bk;
      assert.equal(r.code, 0, r.stderr);
      const m = /backup written to .*: (\d+) bytes, (\d+) comments/.exec(r.stdout);
      assert.ok(m, r.stdout);
      assert.equal(Number(m[1]), statSync(out).size);
      await sleep(300);
      stop = true;
      await Promise.all(loops);
      ws.close();
      const live = await histories(a, videos);
      const liveTotal = Object.values(live).reduce((s, h) => s + h.length, 0);
      const backedUp = Number(m[2]);
      assert.ok(backedUp >= VIDEOS * 150 && backedUp < liveTotal, `backup has ${backedUp} of ${liveTotal}: not taken under load?`);

      restored = await restore(out, dir, 'restored');
      const back = await histories(restored, videos);
      let total = 0;
      for (const v of videos) {
        const h = back[v];
        total += h.length;
        // One snapshot: each video's restored history is a prefix of the
        // live one, field for field.
        assert.deepEqual(h, live[v].slice(0, h.length), `${v}: restored history is not a prefix of the live one`);
      }
      assert.equal(total, backedUp, 'the CLI counted what was restored');
      const restoredIds = new Set(Object.values(back).flat().map((c) => c[0]));
      for (const id of ackedBefore) assert.ok(restoredIds.has(id), `comment ${id} acknowledged before the backup is missing`);
      // The restored node takes new comments after the old ones.
      const s = socket(restored, 'after');
      await connected(s);
      const ch = s.channel(`comments:${videos[0]}`, {});
      await join(ch);
      const [ack] = await postMany(ch, 1, { content: () => 'after restore' });
      assert.ok(ack.id > back[videos[0]].at(-1)[0], 'new ids sort after the restored ones');
      s.disconnect();
    } finally {
      for (const w of writers) w.s.disconnect();
      if (restored) await stopCleanNow(restored, assert);
      await stopCleanNow(a, assert);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a backup at rest restores the history exactly', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-backup-'));
    const a = await startNode({ name: 'rest', args: ['--rate-limit', '1000000/1'] });
    let b;
    try {
      const videos = [uniq('r1-'), uniq('r2-')];
      const s = socket(a, 'p');
      await connected(s);
      for (const v of videos) {
        const ch = s.channel(`comments:${v}`, {});
        await join(ch);
        await postMany(ch, 230, { content: (k) => `${v} ${k} ünïcødé ✓` });
      }
      s.disconnect();
      const out = path.join(dir, 'rest.mdb');
      const r = await cli(['backup', '--out', out, '--admin', `${a.host}:${a.adminPort}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /, 460 comments\n$/);
      assert.equal(statSync(out).mode & 0o777, 0o600);
      b = await restore(out, dir, 'copy');
      assert.deepEqual(await histories(b, videos), await histories(a, videos));
      // --out - streams the same copy to stdout (for kubectl exec).
      const piped = await new Promise((resolve) => {
        const p = spawn(BIN, ['backup', '--out', '-', '--admin', `${a.host}:${a.adminPort}`]);
        const chunks = [];
        let err = '';
        p.stdout.on('data', (d) => chunks.push(d));
        p.stderr.on('data', (d) => { err += d; });
        p.on('exit', (code) => resolve({ code, out: Buffer.concat(chunks), err }));
      });
      assert.equal(piped.code, 0, piped.err);
      assert.match(piped.err, /backup written to stdout: \d+ bytes/);
      assert.equal(piped.out.length, statSync(out).size);
      writeFileSync(path.join(dir, 'piped.mdb'), piped.out);
      const c = await restore(path.join(dir, 'piped.mdb'), dir, 'piped');
      try {
        assert.deepEqual(await histories(c, videos), await histories(a, videos));
      } finally { await stopCleanNow(c, assert); }
    } finally {
      if (b) await stopCleanNow(b, assert);
      await stopCleanNow(a, assert);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a client that goes away mid-backup, or a second backup at once, harms nothing', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-backup-'));
    // Large comments: a store (~20 MB) far bigger than the pipe, our send
    // queue and the socket buffers, so an unread backup really stalls.
    const a = await startNode({ name: 'abort', args: ['--rate-limit', '1000000/1', '--max-comment-bytes', '65000'] });
    try {
      const s = socket(a, 'p');
      await connected(s);
      const ch = s.channel('comments:abort', {});
      await join(ch);
      await postMany(ch, 300, { content: (k) => `${k} ${'y'.repeat(64000)}` });
      s.disconnect();
      // Start a backup and read nothing: the copy blocks on the pipe.
      const stalled = net.connect(a.adminPort, a.host);
      stalled.on('error', () => {});
      stalled.write(`GET /v1/backup HTTP/1.1\r\nHost: ${a.host}\r\n\r\n`);
      stalled.pause();
      await sleep(300);
      const second = await fetch(`${a.admin}/v1/backup`);
      assert.equal(second.status, 409);
      assert.equal((await second.json()).error, 'backup_running');
      stalled.destroy();
      await sleep(300);
      const r = await cli(['backup', '--out', path.join(dir, 'ok.mdb'), '--admin', `${a.host}:${a.adminPort}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /, 300 comments\n$/);
      assert.match(a.logs, /\[BRK-BACKUP\] backup aborted after \d+ bytes: the client went away/);
      // A target that cannot be written: a clear error, nothing left behind.
      const bad = await cli(['backup', '--out', path.join(dir, 'no', 'such', 'dir.mdb'), '--admin', `${a.host}:${a.adminPort}`]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /cannot write .*dir\.mdb\.partial/);
    } finally {
      await stopCleanNow(a, assert);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
