// SPDX-License-Identifier: Apache-2.0
// Presence as a user sees it, through the phoenix client's Presence class:
// who is on a video (comments:<v>), which devices a user has online
// (presence:<user>), the device limit, sockets that vanish without a goodbye,
// and the same views across a two-node cluster (design.md "comments:" and
// "presence:" sections; docs/protocol.md "Presence timing").
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startNode, socket, join, connected, raw, rawJoin, sleep, waitFor, Presence,
} from './lib.mjs';
import { uniq, stopCleanFast as stopClean } from './comments_lib.mjs';

const sortObj = (o) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));

// A channel with a phoenix Presence attached (before the join, as apps do).
function tracked(sock, topic, params) {
  const ch = sock.channel(topic, params);
  const p = new Presence(ch);
  ch.presence = p;
  ch.events = [];
  ch.on('device_limit_reached', (x) => ch.events.push(['device_limit_reached', x]));
  ch.onClose(() => ch.events.push(['close']));
  return ch;
}

// key -> number of metas, as one client's Presence sees it.
function view(ch) {
  const out = {};
  ch.presence.list((key, { metas }) => { out[key] = metas.length; });
  return sortObj(out);
}

// Waits until every observer's presence.list() equals truth (key -> metas).
async function expectViews(observers, truth, what, timeout = 5000) {
  const want = JSON.stringify(sortObj(truth));
  try {
    await waitFor(() => observers.every((ch) => JSON.stringify(view(ch)) === want), { timeout, interval: 20, what });
  } catch {
    throw new Error(`${what}: want ${want} on every observer; got ${observers.map((ch, i) => `#${i}=${JSON.stringify(view(ch))}`).join(' ')}`);
  }
}

function metasOf(ch, key) {
  let found = null;
  ch.presence.list((k, { metas }) => { if (k === key) found = metas; });
  return found;
}

// Resolves {status, response} for a join, whatever its outcome; an errored
// channel is left so the phoenix client stops retrying the join.
function tryJoin(ch, timeout = 5000) {
  return new Promise((resolve) => {
    ch.join(timeout)
      .receive('ok', (r) => resolve({ status: 'ok', response: r }))
      .receive('error', (r) => { ch.leave(); resolve({ status: 'error', response: r }); })
      .receive('timeout', () => { ch.leave(); resolve({ status: 'timeout' }); });
  });
}

function checkMeta(m) {
  assert.equal(typeof m.phx_ref, 'string', JSON.stringify(m));
  assert.ok(m.phx_ref.length > 0);
  assert.ok(Number.isInteger(m.online_at), JSON.stringify(m));
  assert.ok(Math.abs(m.online_at - Date.now() / 1000) < 30, `online_at ${m.online_at} is unix seconds of now`);
}

describe('presence on one node (--idle-timeout 2, --max-devices 3)', () => {
  let node;
  const socks = [];
  // Heartbeats well inside the 2 s idle timeout.
  const open = (user) => { const s = socket(node, user, { heartbeatIntervalMs: 500 }); socks.push(s); return s; };
  before(async () => { node = await startNode({ args: ['--idle-timeout', '2', '--max-devices', '3'] }); });
  after(async () => {
    for (const s of socks) s.disconnect();
    await stopClean(node, assert);
  });

  it('users joining and leaving a video: every observer lists the truth', async () => {
    const topic = `comments:${uniq('pv')}`;
    const w = tracked(open('watcher'), topic);
    await join(w);
    await expectViews([w], { watcher: 1 }, 'watcher alone');

    const a1s = open('alice');
    const a1 = tracked(a1s, topic);
    await join(a1);
    await expectViews([w, a1], { watcher: 1, alice: 1 }, 'alice joined');

    const b1 = tracked(open('bob'), topic);
    await join(b1);
    await expectViews([w, a1, b1], { watcher: 1, alice: 1, bob: 1 }, 'bob joined');

    // carol: a raw socket that heartbeats, to be killed without a goodbye.
    const carol = raw(node, { user: 'carol' });
    await carol.opened;
    const hb = setInterval(() => carol.sendJson([null, 'hb', 'phoenix', 'heartbeat', {}]), 500);
    try {
      const cj = await rawJoin(carol, topic);
      assert.equal(cj[4].status, 'ok');
      const state = await carol.next((m) => m[3] === 'presence_state');
      assert.equal(state[0], cj[0], 'presence_state carries the join_ref');
      assert.deepEqual(Object.keys(state[4]).sort(), ['alice', 'bob', 'carol', 'watcher'],
        'the joiner\'s presence_state already includes itself');
      for (const k of Object.keys(state[4])) for (const m of state[4][k].metas) checkMeta(m);
      await expectViews([w, a1, b1], { watcher: 1, alice: 1, bob: 1, carol: 1 }, 'carol joined');

      // alice on a second socket: one key, two metas.
      const a2 = tracked(open('alice'), topic);
      await join(a2);
      const all = [w, a1, b1, a2];
      await expectViews(all, { watcher: 1, alice: 2, bob: 1, carol: 1 }, 'alice twice');
      // On the wire: a fastlane broadcast with both keys, as Phoenix.
      const diff = await carol.next((m) => m[3] === 'presence_diff' && m[4].joins && m[4].joins.alice);
      assert.equal(diff[0], null); assert.equal(diff[1], null);
      assert.deepEqual(Object.keys(diff[4]).sort(), ['joins', 'leaves']);
      assert.equal(diff[4].joins.alice.metas.length, 1, 'a diff carries only the new session');
      checkMeta(diff[4].joins.alice.metas[0]);
      for (const ch of all) {
        const ms = metasOf(ch, 'alice');
        ms.forEach(checkMeta);
        assert.notEqual(ms[0].phx_ref, ms[1].phx_ref, 'two distinct phx_refs');
      }

      b1.leave();
      await expectViews([w, a1, a2], { watcher: 1, alice: 2, carol: 1 }, 'bob left');

      a1s.disconnect();
      await expectViews([w, a2], { watcher: 1, alice: 1, carol: 1 }, 'alice closed one socket');

      clearInterval(hb);
      const t0 = Date.now();
      carol.terminate();
      await expectViews([w, a2], { watcher: 1, alice: 1 }, 'carol\'s TCP connection destroyed', 5000);
      console.log(`# killed socket gone from lists after ${Date.now() - t0} ms`);
    } finally {
      clearInterval(hb);
      carol.terminate();
    }
  });

  it('a silent socket (no heartbeat, no close) leaves every list after the idle timeout', async () => {
    const topic = `comments:${uniq('idle')}`;
    const w = tracked(open('watcher2'), topic);
    await join(w);
    const ghost = raw(node, { user: 'ghost' });
    await ghost.opened;
    try {
      const t0 = Date.now();
      assert.equal((await rawJoin(ghost, topic))[4].status, 'ok');
      await expectViews([w], { watcher2: 1, ghost: 1 }, 'ghost joined');
      await sleep(Math.max(0, t0 + 1200 - Date.now()));
      assert.deepEqual(view(w), { ghost: 1, watcher2: 1 }, 'still listed before the 2 s idle timeout');
      await expectViews([w], { watcher2: 1 }, 'ghost timed out', 6000);
      const dt = Date.now() - t0;
      console.log(`# silent socket gone from lists ${dt} ms after its last message`);
      assert.ok(dt >= 1800, `removed after ${dt} ms, before the idle timeout`);
      const c = await ghost.closed();
      assert.equal(c.code, 1002, JSON.stringify(c));
    } finally { ghost.terminate(); }
  });

  it('devices of one user (presence:<user>, --max-devices 3)', async () => {
    const user = uniq('dana');
    const topic = `presence:${user}`;
    const dev = {};
    const devSock = {};
    const openDev = async (id) => {
      devSock[id] = open(user);
      dev[id] = tracked(devSock[id], topic, { device_id: id });
      return tryJoin(dev[id]);
    };
    assert.equal((await openDev('d1')).status, 'ok');
    await expectViews([dev.d1], { d1: 1 }, 'd1');
    assert.equal((await openDev('d2')).status, 'ok');
    await expectViews([dev.d1, dev.d2], { d1: 1, d2: 1 }, 'd1 d2');
    assert.equal((await openDev('d3')).status, 'ok');
    await expectViews([dev.d1, dev.d2, dev.d3], { d1: 1, d2: 1, d3: 1 }, 'd1 d2 d3');
    for (const id of ['d1', 'd2', 'd3']) metasOf(dev[id], 'd1').forEach(checkMeta);

    assert.deepEqual(await openDev('d4'), { status: 'error', response: { reason: 'device_limit_reached' } });

    devSock.d2.disconnect();
    await expectViews([dev.d1, dev.d3], { d1: 1, d3: 1 }, 'd2 went offline');
    assert.equal((await openDev('d4')).status, 'ok', 'a freed slot admits a new device');
    await expectViews([dev.d1, dev.d3, dev.d4], { d1: 1, d3: 1, d4: 1 }, 'd4 admitted');

    // d1 reconnects from a new socket: accepted, and the old session closes.
    const old = dev.d1;
    const oldRef = metasOf(dev.d3, 'd1')[0].phx_ref;
    assert.equal((await openDev('d1')).status, 'ok', 'the same device rejoining is accepted at the limit');
    await waitFor(() => old.events.some((e) => e[0] === 'close'), { what: 'old d1 channel closed' });
    assert.deepEqual(old.events, [['close']]);
    // Every observer lists d1 once, by its new session's phx_ref.
    await waitFor(() => [dev.d1, dev.d3, dev.d4].every((ch) => {
      const ms = metasOf(ch, 'd1');
      return ms && ms.length === 1 && ms[0].phx_ref !== oldRef;
    }), { what: 'd1 listed once with its new phx_ref' });
    await expectViews([dev.d1, dev.d3, dev.d4], { d1: 1, d3: 1, d4: 1 }, 'd1 replaced');
  });
});

// presence_state holds every presence tracked before it is sent, the
// joiner's own included, as Phoenix's does (phoenix.md section 3). A 3 s
// tick puts every join of a case within one tick, where joiners used to be
// served one shared state that missed themselves.
describe('presence_state is exact at join (--presence-tick-ms 3000)', () => {
  let node;
  const socks = [];
  const open = (user) => { const s = socket(node, user); socks.push(s); return s; };
  before(async () => { node = await startNode({ args: ['--presence-tick-ms', '3000'] }); });
  after(async () => {
    for (const s of socks) s.disconnect();
    await stopClean(node, assert);
  });

  // A channel whose Presence remembers what its first onSync listed, and
  // how many presence_diff frames came before that.
  function watched(user, topic) {
    const ch = tracked(open(user), topic);
    ch.diffs = 0;
    ch.on('presence_diff', () => { ch.diffs++; });
    ch.firstSync = new Promise((resolve) => {
      ch.presence.onSync(() => {
        if (!ch.synced) {
          ch.synced = true;
          resolve({ keys: ch.presence.list((k) => k).sort(), diffsBefore: ch.diffs, at: Date.now() });
        }
      });
    });
    return ch;
  }

  it('two joins in one tick: each onSync right after join lists the joiner and everyone before it', async () => {
    const topic = `comments:${uniq('tick2')}`;
    const a = watched('alice', topic);
    const t0 = Date.now();
    await join(a);
    const b = watched('bob', topic);
    await join(b);
    const [sa, sb] = [await a.firstSync, await b.firstSync];
    assert.deepEqual(sa.keys, ['alice']);
    assert.deepEqual(sb.keys, ['alice', 'bob'], 'bob\'s first onSync lists bob himself');
    assert.equal(a.diffs + b.diffs, 0, 'both states came within one tick, before any diff');
    assert.ok(sb.at - t0 < 3000, `within one tick: ${sb.at - t0} ms`);
    // The tick's diff then brings alice bob's join, once.
    await expectViews([a, b], { alice: 1, bob: 1 }, 'after the tick', 8000);
  });

  it('a join right after a leave in the same tick: the leaver is gone from the joiner\'s state', async () => {
    const topic = `comments:${uniq('tickleave')}`;
    const a = watched('alice', topic);
    await join(a);
    const b = watched('bob', topic);
    await join(b);
    assert.deepEqual((await b.firstSync).keys, ['alice', 'bob']);
    await new Promise((resolve) => b.leave().receive('ok', resolve));
    const c = watched('carol', topic);
    await join(c);
    const sc = await c.firstSync;
    assert.deepEqual(sc.keys, ['alice', 'carol'], 'carol\'s state: without bob, with herself');
    assert.equal(sc.diffsBefore + a.diffs, 0, 'still within the first tick');
    await expectViews([a, c], { alice: 1, carol: 1 }, 'after the tick', 8000);
  });

  it('a burst of 200 joins in one tick: every first state holds the joiner and all who joined before', async () => {
    const topic = `comments:${uniq('burst')}`;
    const users = Array.from({ length: 200 }, (_, i) => `burst${String(i).padStart(3, '0')}`);
    const chans = users.map((u) => watched(u, topic));
    const t0 = Date.now();
    await Promise.all(chans.map((ch) => join(ch, 10000)));
    const states = await Promise.all(chans.map((ch) => ch.firstSync));
    const last = Math.max(...states.map((s) => s.at));
    console.log(`# 200 joins and their states in ${last - t0} ms`);
    states.forEach((s, i) => assert.ok(s.keys.includes(users[i]), `${users[i]}'s state lists ${users[i]}: ${s.keys.length} keys`));
    // The node handles joins one at a time: the states, by size, are
    // 1, 2, ..., 200 keys, each holding the one before.
    const bySize = [...states].sort((x, y) => x.keys.length - y.keys.length);
    assert.deepEqual(bySize.map((s) => s.keys.length), users.map((_, i) => i + 1));
    for (let i = 1; i < bySize.length; i++) {
      const prev = new Set(bySize[i - 1].keys);
      assert.ok([...prev].every((k) => bySize[i].keys.includes(k)), `state ${i + 1} holds state ${i}`);
    }
    if (last - t0 < 3000) {
      assert.equal(states.reduce((n, s) => n + s.diffsBefore, 0), 0, 'no diff before any state: one tick');
    }
    await expectViews([chans[0], chans[199]], Object.fromEntries(users.map((u) => [u, 1])), 'all 200 listed after the tick', 10000);
  });
});

describe('presence:<user> admission on a default node (--max-devices 1)', () => {
  let node;
  const socks = [];
  const open = (user) => { const s = socket(node, user); socks.push(s); return s; };
  before(async () => { node = await startNode(); });
  after(async () => {
    for (const s of socks) s.disconnect();
    await stopClean(node, assert);
  });

  it('another user\'s presence topic is unauthorized', async () => {
    const r = await tryJoin(open('eve').channel('presence:frank', { device_id: 'x' }));
    assert.deepEqual(r, { status: 'error', response: { reason: 'unauthorized' } });
  });

  it('a join without a usable device_id is invalid_params', async () => {
    const s = open('gina');
    for (const params of [{}, { device_id: 5 }, { device_id: '' }, { device_id: null }, { device_id: 'x'.repeat(129) }]) {
      const r = await tryJoin(s.channel('presence:gina', params));
      assert.deepEqual(r, { status: 'error', response: { reason: 'invalid_params' } }, JSON.stringify(params));
    }
    assert.equal((await tryJoin(s.channel('presence:gina', { device_id: 'x'.repeat(128) }))).status, 'ok');
  });

  it('a second device is refused; the same device from a new socket replaces the old session', async () => {
    const user = uniq('hal');
    const topic = `presence:${user}`;
    const phone1 = tracked(open(user), topic, { device_id: 'phone' });
    assert.equal((await tryJoin(phone1)).status, 'ok');
    await expectViews([phone1], { phone: 1 }, 'phone online');

    const laptop = tracked(open(user), topic, { device_id: 'laptop' });
    assert.deepEqual(await tryJoin(laptop), { status: 'error', response: { reason: 'device_limit_reached' } });

    const phone2 = tracked(open(user), topic, { device_id: 'phone' });
    assert.equal((await tryJoin(phone2)).status, 'ok');
    await waitFor(() => phone1.events.length > 0, { what: 'old phone session closed' });
    assert.deepEqual(phone1.events, [['close']], 'phx_close, not device_limit_reached, for a replaced session');
    assert.equal(phone1.state, 'closed');
    await expectViews([phone2], { phone: 1 }, 'one phone session');
    await sleep(200);
    assert.deepEqual(phone2.events, [], 'the new session stays');

    // Still one device: the laptop is still refused, until the phone leaves.
    assert.deepEqual(await tryJoin(tracked(open(user), topic, { device_id: 'laptop' })),
      { status: 'error', response: { reason: 'device_limit_reached' } });
    phone2.leave();
    await waitFor(() => phone2.state === 'closed', { what: 'phone left' });
    const laptop2 = tracked(open(user), topic, { device_id: 'laptop' });
    assert.equal((await tryJoin(laptop2)).status, 'ok');
    await expectViews([laptop2], { laptop: 1 }, 'laptop online');
  });
});

describe('presence across a two-node cluster', () => {
  let n1, n2;
  const socks = [];
  const open = (node, user) => { const s = socket(node, user); socks.push(s); return s; };
  const block = async (node, peer, on) => {
    const res = await fetch(`${node.admin}/v1/test/block?peer=${peer}&on=${on ? 1 : 0}`, { method: 'POST' });
    assert.equal(res.status, 200, `block ${peer} on ${node.name}: ${await res.text()}`);
  };
  const alive = async (node, names) => {
    const m = await node.adminJson('/v1/members');
    return names.every((n) => m.members.some((x) => x.name === n && x.status === 'alive'));
  };

  before(async () => {
    n1 = await startNode({ host: '127.0.0.1', name: 'pa', args: ['--cluster-test-hooks'] });
    n2 = await startNode({ host: '127.0.0.2', name: 'pb', join: [n1.bus], args: ['--cluster-test-hooks'] });
    await waitFor(async () => await alive(n1, ['pa', 'pb']) && await alive(n2, ['pa', 'pb']),
      { what: 'both nodes alive in both views', timeout: 10000 });
  });
  after(async () => {
    for (const s of socks) s.disconnect();
    if (n2 && !n2.exited) await stopClean(n2, assert); else n2?.cleanup();
    if (n1) await stopClean(n1, assert);
  });

  it('a user on node 1 is in presence_state and lists on node 2, and leaves there too', async () => {
    const topic = `comments:${uniq('cv')}`;
    const a1 = tracked(open(n1, 'alice'), topic);
    await join(a1);
    const watch2 = tracked(open(n2, 'watcher'), topic);
    await join(watch2);
    await expectViews([a1, watch2], { alice: 1, watcher: 1 }, 'alice (n1) and watcher (n2)');

    // Once n2 knows alice, a joiner on n2 gets her in presence_state.
    const b = open(n2, 'bob').channel(topic);
    const states = [];
    b.on('presence_state', (s) => states.push(s));
    b.presence = new Presence(b);
    await join(b);
    await waitFor(() => states.length > 0, { what: 'presence_state on n2' });
    assert.deepEqual(Object.keys(states[0]).sort(), ['alice', 'bob', 'watcher']);
    states[0].alice.metas.forEach(checkMeta);

    const a2 = tracked(open(n2, 'alice'), topic);
    await join(a2);
    await expectViews([a1, watch2, b, a2], { alice: 2, bob: 1, watcher: 1 }, 'alice on both nodes');
    a1.leave();
    await expectViews([watch2, b, a2], { alice: 1, bob: 1, watcher: 1 }, 'alice left n1');
    const refs = [watch2, b, a2].map((ch) => metasOf(ch, 'alice')[0].phx_ref);
    assert.equal(new Set(refs).size, 1, 'every node lists the remaining session by the same phx_ref');
  });

  it('a comment posted on node 1 reaches a subscriber on node 2', async () => {
    const topic = `comments:${uniq('cc')}`;
    const p = open(n1, 'poster').channel(topic);
    const r = open(n2, 'reader').channel(topic);
    const got = [];
    r.on('new_comment', (c) => got.push(c));
    await join(p); await join(r);
    const ack = await new Promise((res) => p.push('new_comment', { content: 'across' }).receive('ok', res));
    await waitFor(() => got.length === 1, { what: 'new_comment on n2' });
    assert.equal(got[0].id, ack.id);
  });

  it('devices admitted on both nodes at the same moment: one survives, the other is evicted', async () => {
    const user = uniq('racer');
    const topic = `presence:${user}`;
    const A = tracked(open(n1, user), topic, { device_id: 'A' });
    const B = tracked(open(n2, user), topic, { device_id: 'B' });
    await Promise.all([connected(socks.at(-1)), connected(socks.at(-2))]);
    const [ra, rb] = await Promise.all([tryJoin(A), tryJoin(B)]);
    const admitted = [ra.status === 'ok' && A, rb.status === 'ok' && B].filter(Boolean);
    assert.ok(admitted.length >= 1, `at least one admitted: ${JSON.stringify([ra, rb])}`);
    for (const r of [ra, rb]) {
      if (r.status !== 'ok') assert.deepEqual(r.response, { reason: 'device_limit_reached' });
    }
    console.log(`# concurrent admission: ${admitted.length} admitted at join`);
    // Settle: exactly one admitted channel still open.
    await waitFor(() => admitted.filter((ch) => !ch.events.some((e) => e[0] === 'close')).length === 1,
      { what: 'exactly one device left', timeout: 5000 });
    await sleep(500);
    const survivors = admitted.filter((ch) => !ch.events.some((e) => e[0] === 'close'));
    assert.equal(survivors.length, 1);
    const [win] = survivors;
    const lose = win === A ? B : A;
    const winId = win === A ? 'A' : 'B';
    if (admitted.length === 2) {
      assert.deepEqual(lose.events.map((e) => e[0]), ['device_limit_reached', 'close'], 'evicted: event then phx_close');
    }
    assert.deepEqual(win.events, [], 'the survivor is not closed');
    await expectViews([win], { [winId]: 1 }, 'survivor lists only itself');
    // Both nodes count the survivor: a third device is refused on each.
    for (const node of [n1, n2]) {
      assert.deepEqual(await tryJoin(open(node, user).channel(topic, { device_id: 'C' })),
        { status: 'error', response: { reason: 'device_limit_reached' } }, `C on ${node.name}`);
    }
    // And nothing else lingers: once the survivor leaves, C gets in on the loser's node.
    win.leave();
    const loserNode = win === A ? n2 : n1;
    const cs = open(loserNode, user);
    let C;
    await waitFor(async () => {
      C = tracked(cs, topic, { device_id: 'C' });
      return (await tryJoin(C)).status === 'ok';
    }, { what: 'C admitted after the survivor left', timeout: 5000, interval: 200 });
    await expectViews([C], { C: 1 }, 'only C');
  });

  it('after a partition heals, the newest device is evicted with device_limit_reached + phx_close', async () => {
    const user = uniq('split');
    const topic = `presence:${user}`;
    await block(n1, 'pb', true);
    await block(n2, 'pa', true);
    try {
      const A = tracked(open(n1, user), topic, { device_id: 'A' });
      assert.equal((await tryJoin(A)).status, 'ok');
      await sleep(300);
      const B = tracked(open(n2, user), topic, { device_id: 'B' });
      const rb = await tryJoin(B);
      assert.equal(rb.status, 'ok', `B admitted on the other side of the partition: ${JSON.stringify(rb)}`);
      await expectViews([A], { A: 1 }, 'A alone on n1');
      await expectViews([B], { B: 1 }, 'B alone on n2');
      await block(n1, 'pb', false);
      await block(n2, 'pa', false);
      await waitFor(() => B.events.some((e) => e[0] === 'close'), { what: 'B evicted after heal', timeout: 10000 });
      assert.deepEqual(B.events.map((e) => e[0]), ['device_limit_reached', 'close']);
      await sleep(1000);
      assert.deepEqual(A.events, [], 'the oldest device stays');
      await expectViews([A], { A: 1 }, 'A alone after heal');
    } finally {
      await block(n1, 'pb', false);
      await block(n2, 'pa', false);
    }
  });

  it('a node that stops (SIGTERM) takes its presences away from the other node', async () => {
    const topic = `comments:${uniq('bye')}`;
    const w = tracked(open(n1, 'stayer'), topic);
    await join(w);
    const g = tracked(open(n2, 'goer'), topic);
    await join(g);
    await expectViews([w], { stayer: 1, goer: 1 }, 'both listed on n1');
    const t0 = Date.now();
    await stopClean(n2, assert);
    await expectViews([w], { stayer: 1 }, 'goer gone with its node', 5000);
    console.log(`# presences of a stopped node gone after ${Date.now() - t0} ms`);
  });
});
