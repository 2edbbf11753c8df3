// SPDX-License-Identifier: Apache-2.0
// The Firebase sync with three real nodes on 127.0.0.1..3 against the fake
// (fake_firebase.mjs): only the leader sends; the synced marks reach and
// are persisted by every node; every acknowledged comment, posted on all
// three nodes, lands exactly once at comments/<video>/<id>; kill -9 of the
// leader mid-queue and a partition lose nothing, and their duplicate
// writes are bounded and counted; a node that stops leading stops sending
// at once. The cases that need every node to hold every comment rely on
// comment replication (issue 9).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, socket, join, sleep, waitFor } from './lib.mjs';
import { cli, waitViews, stopAll, block } from './cluster_lib.mjs';
import { postMany, uniq } from './comments_lib.mjs';
import { startFakeFirebase } from './fake_firebase.mjs';
import { FB_SECRET, fbNode, assertSynced, syncOf, metricsOf, sample } from './firebase_lib.mjs';

const started = new Set();
after(async () => {
  for (const n of started) {
    if (!n.exited) { await n.kill9(); }
    n.cleanup();
  }
});

// n1 (the seed, and so the leader) .. n3, all syncing to fb.
async function cluster(fb, { extra = [], data = [] } = {}) {
  const opts = (i) => {
    const o = fbNode(fb, { extra: ['--cluster-test-hooks', ...extra] });
    return { ...o, host: `127.0.0.${i}`, name: `n${i}`, ...(data[i - 1] ? { data: data[i - 1] } : {}) };
  };
  const nodes = [await startNode(opts(1))];
  started.add(nodes[0]);
  for (let i = 2; i <= 3; i++) {
    const n = await startNode({ ...opts(i), join: [nodes[0].bus] });
    started.add(n);
    nodes.push(n);
  }
  await waitViews(nodes, { n1: 'alive', n2: 'alive', n3: 'alive' }, 'n1', { timeout: 10000, what: '3 nodes, n1 leads' });
  return nodes;
}

async function poster(node, video, user) {
  const s = socket(node, user);
  const ch = s.channel(`comments:${video}`, {});
  await join(ch);
  return { s, ch };
}

const requestsOf = async (n) => {
  const m = await metricsOf(n);
  let t = 0;
  for (const st of ['2xx', '401', '403', '429', '4xx', '5xx', 'timeout', 'connection']) {
    t += sample(m, 'parley_firebase_requests_total', { status: st }) || 0;
  }
  return t;
};

describe('Firebase sync, three nodes', () => {
  it('only the leader sends; every node learns and persists the synced marks', async () => {
    const fb = await startFakeFirebase({ secret: FB_SECRET });
    const nodes = await cluster(fb);
    const [n1, n2, n3] = nodes;
    try {
      const v = uniq('v');
      const a = await poster(n1, v, 'alice');
      const acks = await postMany(a.ch, 120);
      await assertSynced(fb, v, acks, 'alice');
      a.s.disconnect();
      // n1's comments carry n1's origin (an opaque name of the store's).
      const origin = (await syncOf(n1)).origins.find((x) => x.held === 120).origin;
      for (const n of [n2, n3]) {
        const st = await waitFor(async () => {
          const s = await syncOf(n);
          const o = s.origins.find((x) => x.origin === origin);
          return o && o.synced === 120 && o.sent === 120 ? s : false;
        }, { what: `${n.name} knows n1's marks` });
        assert.equal(st.is_leader, false);
        assert.equal(st.leader, 'n1');
        assert.equal(st.in_flight, 0);
        assert.equal(await requestsOf(n), 0, `${n.name} sent nothing`);
      }
      assert.equal((await syncOf(n1)).is_leader, true);
      // Persisted: n3 alone, restarted on its data without its peers,
      // still knows how far n1's comments were synced.
      const data3 = n3.data;
      await stopAll(nodes.slice(0, 2), assert);
      n3.proc.kill('SIGTERM');
      await n3.exit;
      const solo = await startNode({ ...fbNode(fb, { extra: [] }), host: '127.0.0.3', name: 'n3', data: data3 });
      started.add(solo);
      const o = (await syncOf(solo)).origins.find((x) => x.origin === origin);
      assert.deepEqual({ synced: o.synced, sent: o.sent }, { synced: 120, sent: 120 });
      await stopAll([solo], assert);
    } finally {
      await stopAll(nodes.filter((n) => !n.exited), assert);
      await fb.close();
    }
  });

  it('a node that stops leading stops sending at once; the next leader resumes from the marks', async () => {
    const fb = await startFakeFirebase({ secret: FB_SECRET, delayMs: 2000 });
    const nodes = await cluster(fb, { extra: ['--firebase-batch', '20'] });
    const [n1, n2] = nodes;
    try {
      const v = uniq('v');
      const a = await poster(n1, v, 'alice');
      const first = await postMany(a.ch, 40);
      fb.delayMs = 0;
      await assertSynced(fb, v, first, 'alice');
      fb.delayMs = 3000;
      await postMany(a.ch, 40, { content: (i) => `slow ${i}` });
      await waitFor(async () => (await syncOf(n1)).in_flight > 0, { what: 'n1 has requests in flight' });
      const origin = (await syncOf(n1)).origins.find((x) => x.held === 80).origin;
      a.s.disconnect();
      const r = await cli(['leave', '--admin', `${n1.host}:${n1.adminPort}`]);
      assert.equal(r.code, 0, r.stderr);
      const st = await syncOf(n1);
      assert.equal(st.is_leader, false);
      assert.equal(st.in_flight, 0, 'cancelled at once');
      const sentThen = await requestsOf(n1);
      assert.match(n1.logs, /BRK-FBSYNC.*no longer the leader: Firebase sync stopped \([1-9]\d* requests cancelled/);
      await waitFor(async () => (await syncOf(n2)).is_leader, { timeout: 10000, what: 'n2 leads' });
      await sleep(4000);
      assert.equal(await requestsOf(n1), sentThen, 'n1 sent nothing after it stopped leading');
      // n2 starts from the replicated marks: nothing below them again.
      const o = (await syncOf(n2)).origins.find((x) => x.origin === origin);
      assert.ok(o.synced >= 40, `n2 resumes from n1's mark (${o.synced})`);
    } finally {
      fb.release();
      await stopAll(nodes.filter((n) => !n.exited), assert);
      await fb.close();
    }
  });

  // Needs comment replication (issue 9): the leader must hold the comments
  // the other nodes accepted.
  it('every acknowledged comment posted on all three nodes reaches Firebase exactly once', async () => {
    const fb = await startFakeFirebase({ secret: FB_SECRET });
    const nodes = await cluster(fb);
    try {
      const v = uniq('v');
      const posters = await Promise.all(nodes.map((n, i) => poster(n, v, `user${i + 1}`)));
      const acks = await Promise.all(posters.map((p) => postMany(p.ch, 200, { inFlight: 20 })));
      for (const [i, a] of acks.entries()) {
        await assertSynced(fb, v, a, `user${i + 1}`, { timeout: 30000, what: `comments accepted by n${i + 1}` });
      }
      assert.equal(fb.count(), 600);
      assert.equal(fb.duplicates(), 0);
      for (const p of posters) p.s.disconnect();
      for (const n of nodes) {
        const st = await waitFor(async () => { const s = await syncOf(n); return s.queue_depth === 0 ? s : false; },
          { what: `${n.name} sees nothing pending` });
        assert.equal(st.parked, 0);
      }
    } finally {
      await stopAll(nodes.filter((n) => !n.exited), assert);
      await fb.close();
    }
  });

  // Needs comment replication (issue 9).
  it('kill -9 of the leader mid-queue: the next leader finishes, nothing missing, duplicates counted', { timeout: 120000 }, async () => {
    const fb = await startFakeFirebase({ secret: FB_SECRET });
    const nodes = await cluster(fb, { extra: ['--firebase-batch', '50', '--firebase-max-inflight', '2'] });
    const [n1, n2, n3] = nodes;
    try {
      const v = uniq('v');
      const posters = await Promise.all(nodes.map((n, i) => poster(n, v, `user${i + 1}`)));
      // The database writes what n1 sends but its answers never come back:
      // n1 dies with two batches in flight.
      fb.hang({ ms: 600000, apply: true });
      const acks = await Promise.all(posters.map((p) => postMany(p.ch, 150, { inFlight: 10 })));
      await waitFor(async () => (await syncOf(n1)).in_flight === 2, { what: 'two requests in flight on n1' });
      await n1.kill9();
      fb.release();
      for (const [i, a] of acks.slice(1).entries()) {
        await assertSynced(fb, v, a, `user${i + 2}`, { timeout: 30000 });
      }
      await assertSynced(fb, v, acks[0], 'user1', { timeout: 30000, what: "the dead leader's own comments" });
      assert.equal(fb.count(), 450);
      const leader = (await syncOf(n2)).is_leader ? n2 : n3;
      const st = await waitFor(async () => { const s = await syncOf(leader); return s.queue_depth === 0 ? s : false; },
        { what: 'the new leader drained' });
      assert.ok(fb.duplicates() <= 100, `duplicates ${fb.duplicates()} (at most the 2 x 50 in flight)`);
      assert.ok(st.resent >= fb.duplicates(), `counted ${st.resent} >= ${fb.duplicates()} duplicates`);
      for (const p of posters.slice(1)) p.s.disconnect();
    } finally {
      fb.release();
      await stopAll(nodes.filter((n) => !n.exited), assert);
      await fb.close();
    }
  });

  // Needs comment replication (issue 9) for the heal to bring each side's
  // comments to the other.
  it("a partition: each side's leader syncs what its side accepted; after the heal all is there, duplicates bounded and counted", { timeout: 120000 }, async () => {
    const fb = await startFakeFirebase({ secret: FB_SECRET });
    const nodes = await cluster(fb);
    const [n1, n2, n3] = nodes;
    try {
      const v = uniq('v');
      await block(n1, n3, true);
      await block(n2, n3, true);
      await waitFor(async () => (await syncOf(n3)).is_leader, { timeout: 15000, what: 'n3 leads its side' });
      const posters = await Promise.all(nodes.map((n, i) => poster(n, v, `user${i + 1}`)));
      const acks = await Promise.all(posters.map((p) => postMany(p.ch, 100)));
      // Each side's leader writes what its side accepted.
      await assertSynced(fb, v, acks[0], 'user1', { what: "side A's comments (n1)" });
      await assertSynced(fb, v, acks[1], 'user2', { what: "side A's comments (n2)" });
      await assertSynced(fb, v, acks[2], 'user3', { what: "side B's comments (n3)" });
      assert.equal((await syncOf(n1)).is_leader, true);
      await block(n1, n3, false);
      await block(n2, n3, false);
      await waitViews(nodes, { n1: 'alive', n2: 'alive', n3: 'alive' }, 'n1', { timeout: 15000, what: 'healed' });
      const more = await postMany(posters[2].ch, 20, { content: (i) => `after ${i}` });
      await assertSynced(fb, v, more, 'user3');
      assert.equal(fb.count(), 320);
      let resent = 0;
      for (const n of nodes) resent += (await syncOf(n)).resent;
      assert.ok(fb.duplicates() <= 300, `duplicates ${fb.duplicates()}`);
      assert.ok(resent >= fb.duplicates(), `counted ${resent} >= ${fb.duplicates()} duplicates`);
      for (const p of posters) p.s.disconnect();
    } finally {
      await stopAll(nodes.filter((n) => !n.exited), assert);
      await fb.close();
    }
  });
});
