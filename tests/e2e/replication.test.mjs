// SPDX-License-Identifier: Apache-2.0
// Comment replication across real nodes (issue 9): every node ends up with
// every comment in the same order; partitions heal; a killed, wiped or
// restored node catches up without reusing an (origin, seq); a new node's
// /readyz waits for its catch-up; `since` works across nodes; --ack-replicas;
// hostile replication input. Bounds: live copies are everywhere within 5 s
// of the last ack, a healed partition within 15 s.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  BIN, startNode, socket, join, push, connected, httpGet, sleep, waitFor,
} from './lib.mjs';
import { stopAll, block, busConnect, mp } from './cluster_lib.mjs';
import { postMany, readHistory, strictlyIncreasing } from './comments_lib.mjs';

const FILL = path.resolve(path.dirname(BIN), '../tests/tools/fill_store');

const started = new Set();
// Posting is what these tests do: a rate limit would only get in the way.
async function start(opts) {
  const n = await startNode({ ...opts, args: ['--rate-limit', '1000000/1', ...(opts.args || [])] });
  started.add(n);
  return n;
}
after(async () => {
  for (const n of started) {
    if (!n.exited) { await n.kill9(); }
    n.cleanup();
  }
});

async function cluster(k, args = []) {
  const nodes = [await start({ host: '127.0.0.1', name: 'n1', args })];
  for (let i = 2; i <= k; i++) {
    nodes.push(await start({ host: `127.0.0.${i}`, name: `n${i}`, join: [nodes[0].bus], args }));
  }
  await waitFor(async () => {
    const views = await Promise.all(nodes.map((n) => n.adminJson('/v1/members')));
    return views.every((v) => v.members.filter((m) => m.status === 'alive').length === k);
  }, { timeout: 10000, what: `${k} nodes alive` });
  await waitFor(async () => (await Promise.all(nodes.map((n) => httpGet(`${n.http}/readyz`))))
    .every((r) => r.status === 200), { timeout: 10000, what: 'all ready' });
  return nodes;
}

// Restarts a node that was stopped, on the same addresses and (unless
// wiped) the same data dir.
function restart(old, extra = {}) {
  return start({
    host: old.host, name: old.name, port: old.port, adminPort: old.adminPort,
    busPort: old.busPort, directPort: old.directPort, data: old.data,
    join: old.name === 'n1' ? undefined : extra.join, args: extra.args, keepData: true,
  });
}

const uniq = (p) => `${p}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;

// The whole history of video on node, as ids (oldest first).
async function historyOf(node, video) {
  const s = socket(node, 'reader');
  try {
    await connected(s);
    const { comments } = await readHistory(s.channel(`comments:${video}`));
    return comments;
  } finally { s.disconnect(); }
}

// Waits until every node's history of every video is exactly `want` (ids,
// oldest first) and returns how long it took.
async function converge(nodes, videos, want, timeout) {
  const t0 = Date.now();
  let last = '';
  await waitFor(async () => {
    for (const v of videos) {
      for (const n of nodes) {
        const ids = (await historyOf(n, v)).map((c) => c.id);
        if (JSON.stringify(ids) !== JSON.stringify(want[v])) {
          last = `${n.name} ${v}: ${ids.length} of ${want[v].length}`;
          return false;
        }
      }
    }
    return true;
  }, { timeout, interval: 200, what: 'identical histories' }).catch((e) => {
    throw new Error(`${e.message}: ${last}`);
  });
  return Date.now() - t0;
}

// Waits until every node holds the same history of video (none holds
// more, so the cluster has converged) and returns it as ids.
async function agreed(nodes, video, timeout) {
  let ids = null;
  let last = '';
  await waitFor(async () => {
    const all = await Promise.all(nodes.map(async (n) => (await historyOf(n, video)).map((c) => c.id)));
    last = all.map((h, i) => `${nodes[i].name} ${h.length}`).join(', ');
    if (!all.every((h) => JSON.stringify(h) === JSON.stringify(all[0]))) return false;
    ids = all[0];
    return true;
  }, { timeout, interval: 200, what: 'one history on every node' }).catch((e) => {
    throw new Error(`${e.message}: ${last}`);
  });
  return ids;
}

async function post(node, user, video, n, prefix, onAck = null) {
  const s = socket(node, user);
  try {
    await connected(s);
    const ch = s.channel(`comments:${video}`);
    await join(ch);
    return await postMany(ch, n, { inFlight: 10, content: (i) => `${prefix} ${i}`, timeout: 20000, onAck });
  } finally { s.disconnect(); }
}

const repl = (n) => n.adminJson('/v1/replication');
const sorted = (acks) => acks.map((a) => a.id).sort();

async function assertNoConflicts(nodes) {
  for (const n of nodes) {
    const r = await repl(n);
    assert.equal(r.counters.conflicts, 0, `${n.name} conflicts`);
    assert.equal(r.counters.malformed, 0, `${n.name} malformed`);
  }
}

describe('replication', () => {
  it('three nodes posting at once end with the same history, in the same order, on every node', async () => {
    const nodes = await cluster(3);
    const videos = [uniq('ra'), uniq('rb')];
    const acks = await Promise.all(nodes.flatMap((n, i) => videos.map((v) => post(n, `u${i}`, v, 100, `${n.name}`))));
    const want = {};
    videos.forEach((v, k) => {
      want[v] = acks.filter((_, j) => j % 2 === k).flatMap(sorted).sort();
      assert.equal(want[v].length, 300);
    });
    const took = await converge(nodes, videos, want, 5000);
    for (const v of videos) {
      const h = await historyOf(nodes[2], v);
      assert.equal(strictlyIncreasing(h.map((c) => c.id)), null);
      // A cursor from one node pages the same on another.
      const s = socket(nodes[0], 'pager');
      await connected(s);
      const ch = s.channel(`comments:${v}`, { limit: 10 });
      await join(ch);
      const page = await push(ch, 'list_comments', { before: h[150].id, limit: 20 });
      s.disconnect();
      assert.deepEqual(page.response.comments.map((c) => c.id), h.slice(130, 150).map((c) => c.id));
    }
    const r = await repl(nodes[0]);
    assert.equal(r.caught_up, true);
    for (const o of r.origins) { assert.equal(o.lag_comments, 0, `lag ${o.origin}`); }
    await assertNoConflicts(nodes);
    console.log(`# 600 comments posted on 3 nodes at once: identical everywhere ${took} ms after the last ack`);
    await stopAll(nodes, assert);
  });

  it('a partition with posts on both sides heals into identical histories', async () => {
    const nodes = await cluster(3, ['--cluster-test-hooks']);
    const [n1, n2, n3] = nodes;
    const video = uniq('part');
    await block(n3, n1, true);
    await block(n3, n2, true);
    await waitFor(async () => (await n1.adminJson('/v1/members')).members.find((m) => m.name === 'n3').status === 'dead',
      { timeout: 10000, what: 'n3 dead to n1' });
    const [a1, a3] = await Promise.all([post(n1, 'left', video, 60, 'left'), post(n3, 'right', video, 40, 'right')]);
    await sleep(500);
    // Each side holds only its own comments.
    assert.equal((await historyOf(n2, video)).length, 60);
    assert.equal((await historyOf(n3, video)).length, 40);
    await block(n3, n1, false);
    await block(n3, n2, false);
    const took = await converge(nodes, [video], { [video]: [...sorted(a1), ...sorted(a3)].sort() }, 15000);
    await assertNoConflicts(nodes);
    console.log(`# partition healed: 100 comments identical on 3 nodes ${took} ms after the heal`);
    await stopAll(nodes, assert);
  });

  it('kill -9 mid-stream, a wiped disk and an old backup: each catches up and reuses no (origin, seq)', async () => {
    const nodes = await cluster(3);
    const [n1, n2, n3] = nodes;
    const video = uniq('crash');
    const origins = new Set((await Promise.all(nodes.map(repl))).map((r) => r.origin));

    // kill -9 n2 while n1 and n2 post.
    const posting = post(n1, 'a', video, 300, 'a');
    const acked2 = []; // what n2 acknowledged before it was killed
    const mine = post(n2, 'b', video, 1000, 'b', (a) => acked2.push(a.id)).catch(() => null);
    await sleep(300);
    await n2.kill9();
    const acked1 = await posting;
    await mine;
    const n2b = await restart(n2, { join: [n1.bus] });
    nodes[1] = n2b;
    origins.add((await repl(n2b)).origin);
    await waitFor(async () => (await httpGet(`${n2b.http}/readyz`)).status === 200, { timeout: 20000, what: 'n2 ready' });
    // What n2 wrote before the kill is whatever reached a disk: its own
    // (restarted) or a peer's, and at least all it acknowledged. Live
    // copies in flight at the kill may have
    // reached n3 and not n1, so n1 may still pull some from n3: wait for
    // the three to agree, then hold them to it.
    const want = await agreed([n1, n2b, n3], video, 10000);
    assert.ok(want.length >= 300, 'n1\'s comments and n2\'s that reached a disk');
    for (const id of sorted(acked1)) { assert.ok(want.includes(id)); }
    assert.ok(acked2.length > 0, 'n2 acknowledged some before the kill');
    const kept = new Set(want);
    assert.deepEqual(acked2.filter((id) => !kept.has(id)), [], 'every comment n2 acknowledged survived its kill -9');
    assert.equal(strictlyIncreasing(want), null);

    // A wiped disk: n3 comes back empty and refills.
    await n3.kill9();
    rmSync(n3.data, { recursive: true, force: true });
    const n3b = await restart(n3, { join: [n1.bus] });
    nodes[2] = n3b;
    const o3 = (await repl(n3b)).origin;
    assert.ok(!origins.has(o3), 'a wiped node gets a new origin');
    origins.add(o3);
    await waitFor(async () => (await httpGet(`${n3b.http}/readyz`)).status === 200, { timeout: 20000, what: 'n3 ready' });
    await converge([n1, n2b, n3b], [video], { [video]: want }, 10000);
    const more3 = await post(n3b, 'c', video, 20, 'c');

    // An old backup: n2's data copied while stopped, more posted on n2, then
    // the copy restored. Its comments posted after the copy come back from
    // the peers; its new comments never collide with them.
    await n2b.stop('SIGTERM');
    const snap = mkdtempSync(path.join(os.tmpdir(), 'parley-snap-'));
    cpSync(n2b.data, snap, { recursive: true });
    const n2c = await restart(n2b, { join: [n1.bus] });
    origins.add((await repl(n2c)).origin);
    const lost = await post(n2c, 'd', video, 30, 'd');
    await n2c.stop('SIGTERM');
    rmSync(n2c.data, { recursive: true, force: true });
    cpSync(snap, n2c.data, { recursive: true });
    rmSync(snap, { recursive: true, force: true });
    const n2d = await restart(n2c, { join: [n1.bus] });
    nodes[1] = n2d;
    const o2 = (await repl(n2d)).origin;
    assert.ok(!origins.has(o2), 'a restored node gets a new origin');
    await waitFor(async () => (await httpGet(`${n2d.http}/readyz`)).status === 200, { timeout: 20000, what: 'n2 ready again' });
    const after = await post(n2d, 'e', video, 10, 'e');
    const all = [...want, ...sorted(more3), ...sorted(lost), ...sorted(after)].sort();
    await converge(nodes, [video], { [video]: all }, 10000);
    await assertNoConflicts(nodes);
    await stopAll(nodes, assert);
  });

  it('a node joining a cluster that holds 100,000 comments answers /readyz 503 until it has caught up', async () => {
    const data = mkdtempSync(path.join(os.tmpdir(), 'parley-fill-'));
    // n1's earlier life wrote them: a restarted n1 is their only holder.
    execFileSync(FILL, [data, 'n1~0000beef', '100000', '50']);
    const n1 = await start({ host: '127.0.0.1', name: 'n1', data });
    await waitFor(async () => (await httpGet(`${n1.http}/readyz`)).status === 200, { what: 'n1 ready' });
    const n2 = await start({ host: '127.0.0.2', name: 'n2', join: [n1.bus] });
    const t0 = Date.now();
    let sawNotReady = 0;
    let whenReady = 0;
    await waitFor(async () => {
      const r = await httpGet(`${n2.http}/readyz`);
      if (r.status !== 200) { sawNotReady++; return false; }
      whenReady = Date.now() - t0;
      return true;
    }, { timeout: 120000, interval: 20, what: 'n2 ready' });
    const r = await repl(n2);
    assert.ok(sawNotReady > 0, '/readyz said 503 while catching up');
    assert.equal(r.caught_up, true);
    assert.ok(r.counters.catchup_comments >= 100000, `fetched ${r.counters.catchup_comments}`);
    // Every query matches n1's at once.
    for (const v of ['fill0', 'fill17', 'fill49']) {
      const [a, b] = await Promise.all([historyOf(n1, v), historyOf(n2, v)]);
      assert.equal(b.length, 2000, `${v} on n2`);
      assert.deepEqual(b, a);
    }
    // Only n2 received the catch-up: n1's addressed path carried requests.
    const r1 = await repl(n1);
    assert.ok(r1.counters.direct_bytes_in < r.counters.direct_bytes_in / 50,
      `n1 received ${r1.counters.direct_bytes_in} direct bytes, n2 ${r.counters.direct_bytes_in}`);
    console.log(`# 100,000 comments caught up in ${whenReady} ms (${(r.counters.catchup_bytes / 1e6).toFixed(1)} MB in chunks)`);
    await stopAll([n1, n2], assert);
    rmSync(data, { recursive: true, force: true });
  });

  it('the phoenix client reconnecting to another node with `since` gets exactly what it missed', async () => {
    const nodes = await cluster(3);
    const [n1, n2, n3] = nodes;
    const video = uniq('since');
    await post(n1, 'a', video, 15, 'before');
    const seen = await historyOf(n1, video);
    const missed = [...sorted(await post(n3, 'b', video, 7, 'while away')), ...sorted(await post(n1, 'c', video, 5, 'also'))].sort();
    await sleep(300);
    const s = socket(n2, 'returning');
    await connected(s);
    const ch = s.channel(`comments:${video}`, { since: seen[seen.length - 1].id });
    const reply = await join(ch);
    s.disconnect();
    assert.deepEqual(reply.comments.map((c) => c.id), missed);
    assert.equal(reply.has_more, false);
    await stopAll(nodes, assert);
  });

  it('--ack-replicas 2: ok only once both nodes hold a comment; unavailable when one is down', async () => {
    const nodes = await cluster(2, ['--ack-replicas', '2']);
    const [n1, n2] = nodes;
    const video = uniq('ack');
    const acked = sorted(await post(n1, 'a', video, 50, 'both'));
    // Acknowledged means durable on n2 too, so it is there at once.
    assert.deepEqual((await historyOf(n2, video)).map((c) => c.id), acked);
    await n2.kill9();
    await waitFor(async () => (await n1.adminJson('/v1/members')).members.find((m) => m.name === 'n2').status === 'dead',
      { timeout: 10000, what: 'n2 dead' });
    const s = socket(n1, 'b');
    await connected(s);
    const ch = s.channel(`comments:${video}`);
    await join(ch);
    const t0 = Date.now();
    const r = await push(ch, 'new_comment', { content: 'alone' });
    assert.deepEqual(r, { status: 'error', response: { reason: 'unavailable' } });
    assert.ok(Date.now() - t0 < 1000, 'refused at once');
    s.disconnect();
    const n2b = await restart(n2, { join: [n1.bus], args: ['--ack-replicas', '2'] });
    await waitFor(async () => (await httpGet(`${n2b.http}/readyz`)).status === 200, { timeout: 20000, what: 'n2 ready' });
    const more = sorted(await post(n2b, 'c', video, 10, 'again'));
    await n1.kill9();
    const n1b = await restart(n1, {});
    await waitFor(async () => (await httpGet(`${n1b.http}/readyz`)).status === 200, { timeout: 20000, what: 'n1 ready' });
    const all = [...acked, ...more].sort();
    for (const n of [n1b, n2b]) {
      const ids = (await historyOf(n, video)).map((c) => c.id);
      for (const id of all) { assert.ok(ids.includes(id), `${n.name} lost acknowledged ${id}`); }
    }
    await stopAll([n1b, n2b], assert);
  });

  it('garbage and conflicting replication messages are refused; stored data is unchanged', async () => {
    const nodes = await cluster(2);
    const [n1, n2] = nodes;
    const video = uniq('evil');
    const acks = await post(n1, 'a', video, 3, 'real');
    await sleep(300);
    const before = await historyOf(n2, video);
    assert.equal(before.length, 3);
    const r0 = await repl(n2);
    const c = await busConnect(n2);
    const env = (seq, appKind, body) => mp([1, 5, 'evil', 1, 1, seq, null, [], appKind, body]);
    // A comment claiming an existing id with other bytes (a conflict).
    const fake = [[1, acks[0].id, video, 'mallory', 'rewritten', 1]];
    c.message(env(1, 17, mp([1, 2, 'evil~1', false, fake])));
    // Live copies of an origin the sender does not write.
    c.message(env(2, 17, mp([1, 2, r0.origins.find((o) => o.origin.startsWith('n1~')).origin, false, fake])));
    // Malformed replication bodies.
    c.message(env(3, 17, mp([1, 2, 'evil~1'])));
    c.message(env(4, 16, mp([1, 1, [['evil~1', 9, 1]]]))); // cw > hw
    c.message(env(5, 18, Buffer.from([0xc1, 0xc1])));
    await waitFor(async () => (await repl(n2)).counters.malformed >= r0.counters.malformed + 4, { what: 'malformed counted' });
    await waitFor(async () => (await repl(n2)).counters.conflicts === 1, { what: 'conflict counted' });
    c.end();
    assert.ok(n2.logs.includes('CLU-REPLCONFLICT'), 'the conflict is logged with the peer');
    assert.match(n2.logs, /CLU-REPLCONFLICT.*from evil/);
    // Garbage on the addressed path: a req0 request the node cannot read
    // gets an error reply and changes nothing.
    const reply = await new Promise((resolve, reject) => {
      const s = net.connect(n2.directPort, n2.host);
      let buf = Buffer.alloc(0);
      s.on('error', reject);
      s.on('connect', () => s.write(Buffer.from([0, 0x53, 0x50, 0, 0, 0x30, 0, 0])));
      s.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length === 8) {
          const body = Buffer.concat([Buffer.from([0x80, 0, 0, 1]), Buffer.from('not msgpack at all')]);
          const len = Buffer.alloc(8); len.writeBigUInt64BE(BigInt(body.length));
          s.write(Buffer.concat([len, body]));
        }
        if (buf.length >= 16 && buf.length >= 16 + Number(buf.readBigUInt64BE(8))) {
          s.destroy();
          resolve(buf.subarray(16 + 4));
        }
      });
      setTimeout(() => reject(new Error('no reply on the addressed path')), 5000);
    });
    assert.equal(reply[0], 0x93, 'a reply envelope [version, status, bytes]');
    assert.notEqual(reply[2], 0, 'with an error status');
    assert.deepEqual(await historyOf(n2, video), before);
    assert.deepEqual(await historyOf(n1, video), before);
    // The cluster still replicates.
    const later = await post(n1, 'a', video, 2, 'after');
    await converge(nodes, [video], { [video]: [...sorted(acks), ...sorted(later)].sort() }, 5000);
    await stopAll(nodes, assert);
  });

  it('a node holding comments past a hole vouches only for what precedes it', async () => {
    const nodes = await cluster(2);
    const [n1, n2] = nodes;
    const video = uniq('hole');
    const r0 = await repl(n2);
    // Live copies of origin holey~1 reach n1 only, with seq 3 lost: n1
    // holds 1, 2 and 4, its contiguous mark is 2.
    const c = await busConnect(n1);
    const env = (seq, body) => mp([1, 5, 'holey', 1, 1, seq, null, [], 17, body]);
    const t = Date.now();
    const id = (k) => (t * 16 + k).toString(16).padStart(24, '0');
    const copy = (seq) => [seq, id(seq), video, 'h', `seq ${seq}`, t + seq];
    c.message(env(1, mp([1, 2, 'holey~1', false, [copy(1), copy(2), copy(4)]])));
    await waitFor(async () => (await historyOf(n1, video)).length === 3, { what: 'n1 holds 1, 2 and 4' });
    c.end();
    // n2 pulls the origin from n1: it gets 1 and 2, never a chunk that
    // vouches for the hole, and counts nothing malformed.
    await waitFor(async () => (await historyOf(n2, video)).length === 2, { timeout: 10000, what: 'n2 holds 1 and 2' });
    await sleep(500);
    assert.deepEqual((await historyOf(n2, video)).map((x) => x.id), [id(1), id(2)]);
    const r = await repl(n2);
    assert.equal(r.counters.malformed, r0.counters.malformed, 'a chunk n2 could not accept');
    const mine = r.origins.find((o) => o.origin === 'holey~1');
    assert.equal(mine.cw, 2, JSON.stringify(mine));
    await stopAll(nodes, assert);
  });
});
