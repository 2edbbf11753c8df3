// SPDX-License-Identifier: Apache-2.0
// --rate-limit is cluster-wide: a user reconnecting through the load
// balancer to another node does not get a fresh allowance. Nodes send their
// counts as soon as a burst has been handled, so the overshoot is what the
// other nodes accept in the few milliseconds before the counts arrive.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, socket, join, push, connected, httpGet, waitFor, sleep } from './lib.mjs';
import { stopAll } from './cluster_lib.mjs';
import { parseExposition, sample } from './prom.mjs';

const counts = async (node, direction) => sample(parseExposition((await httpGet(`${node.admin}/metrics`)).text),
  'parley_ratelimit_cluster_counts_total', { direction });

const started = new Set();
const sockets = new Set();
after(async () => {
  // A failed assertion must not leave phoenix clients reconnecting forever.
  for (const s of sockets) { s.disconnect(); }
  for (const n of started) {
    if (!n.exited) { await n.kill9(); }
    n.cleanup();
  }
});

async function pair(limit) {
  const n1 = await startNode({ host: '127.0.0.1', name: 'n1', args: ['--rate-limit', limit] });
  const n2 = await startNode({ host: '127.0.0.2', name: 'n2', join: [n1.bus], args: ['--rate-limit', limit] });
  started.add(n1);
  started.add(n2);
  await waitFor(async () => (await Promise.all([n1, n2].map((n) => httpGet(`${n.http}/readyz`))))
    .every((r) => r.status === 200), { timeout: 10000, what: 'both ready' });
  return [n1, n2];
}

async function channelOn(node, user, video) {
  const s = socket(node, user);
  sockets.add(s);
  await connected(s);
  const ch = s.channel(`comments:${video}`);
  await join(ch);
  return { s, ch };
}

// Windows are fixed and aligned to wall-clock time: a test that straddled
// a window's end would see a fresh allowance. Start well inside one.
async function insideWindow(windowMs, needMs = 10000) {
  const left = windowMs - (Date.now() % windowMs);
  if (left < needMs) await sleep(left + 200);
}

const fire = (ch, n, tag) => Promise.all(Array.from({ length: n },
  (_, i) => push(ch, 'new_comment', { content: `${tag} ${i}` }, 10000).then((r) => r.status)));

describe('cluster-wide rate limit', () => {
  it('one user on two nodes: 30 per window in all, not 30 per node', async () => {
    const nodes = await pair('30/60');
    const [n1, n2] = nodes;
    await insideWindow(60000);
    const video = `rl${Date.now()}`;
    const a = await channelOn(n1, 'hasty', video);
    const b = await channelOn(n2, 'hasty', video);
    // 20 on n1; once they are counted, n2 allows only the other 10.
    const first = await fire(a.ch, 20, 'a');
    assert.equal(first.filter((s) => s === 'ok').length, 20);
    await sleep(300);
    const second = await fire(b.ch, 20, 'b');
    assert.equal(second.filter((s) => s === 'ok').length, 10, 'n2 knew of n1\'s 20');
    // Both at once, as fast as the clients can: the overshoot is bounded.
    const c = await channelOn(n1, 'burst', video);
    const d = await channelOn(n2, 'burst', video);
    const both = (await Promise.all([fire(c.ch, 40, 'c'), fire(d.ch, 40, 'd')])).flat();
    const ok = both.filter((s) => s === 'ok').length;
    console.log(`# 80 pushes at once on two nodes against 30/60: ${ok} accepted`);
    // A node cannot know of pushes the other accepted in the same instant:
    // the worst case is one limit per node; sequential use stays exact.
    assert.ok(ok >= 30 && ok <= 60, `${ok} accepted`);
    // Once the counts have crossed, the window is spent on both nodes.
    await sleep(300);
    assert.deepEqual(await fire(c.ch, 2, 'e'), ['error', 'error'], 'n1 after the burst');
    assert.deepEqual(await fire(d.ch, 2, 'f'), ['error', 'error'], 'n2 after the burst');
    for (const x of [a, b, c, d]) { x.s.disconnect(); }
    await stopAll(nodes, assert);
  });

  it('a node that joins mid-window learns the counts already made (no fresh allowance after a restart)', async () => {
    const n1 = await startNode({ host: '127.0.0.1', name: 'n1', args: ['--rate-limit', '30/60'] });
    started.add(n1);
    await insideWindow(60000, 20000);
    const video = `rj${Date.now()}`;
    const a = await channelOn(n1, 'early', video);
    assert.equal((await fire(a.ch, 20, 'a')).filter((x) => x === 'ok').length, 20);
    const n2 = await startNode({ host: '127.0.0.2', name: 'n2', join: [n1.bus], args: ['--rate-limit', '30/60'] });
    started.add(n2);
    await waitFor(async () => (await httpGet(`${n2.http}/readyz`)).status === 200, { what: 'n2 ready' });
    const b = await channelOn(n2, 'early', video);
    assert.equal((await fire(b.ch, 20, 'b')).filter((x) => x === 'ok').length, 10, 'n2 knew of the 20 made before it joined');
    assert.ok(await counts(n2, 'received') >= 1, 'n2 counted what it received');
    assert.ok(await counts(n1, 'sent') >= 1, 'n1 counted what it sent');
    a.s.disconnect();
    b.s.disconnect();
    await stopAll([n1, n2], assert);
  });

  it('a node with another window length is ignored and said so', async () => {
    const n1 = await startNode({ host: '127.0.0.1', name: 'n1', args: ['--rate-limit', '3/60'] });
    const n2 = await startNode({ host: '127.0.0.2', name: 'n2', join: [n1.bus], args: ['--rate-limit', '3/30'] });
    started.add(n1);
    started.add(n2);
    await waitFor(async () => (await httpGet(`${n2.http}/readyz`)).status === 200, { what: 'n2 ready' });
    await insideWindow(30000);
    const video = `rw${Date.now()}`;
    const a = await channelOn(n1, 'u', video);
    assert.deepEqual(await fire(a.ch, 3, 'a'), ['ok', 'ok', 'ok']);
    await waitFor(() => n2.logs.includes('CLU-RATEWINDOW'), { what: 'the mismatch logged' });
    const b = await channelOn(n2, 'u', video);
    assert.deepEqual(await fire(b.ch, 3, 'b'), ['ok', 'ok', 'ok']);
    assert.ok(await counts(n2, 'refused') >= 1, 'the refused counts are in /metrics');
    assert.equal(await counts(n2, 'received'), 0);
    a.s.disconnect();
    b.s.disconnect();
    await stopAll([n1, n2], assert);
  });
});
