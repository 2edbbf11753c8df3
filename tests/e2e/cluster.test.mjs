// SPDX-License-Identifier: Apache-2.0
// Multi-node tests: real `parley serve` processes on 127.0.0.x, the official
// phoenix client and the `parley` admin subcommands (design.md "Shape:
// Cluster", the cluster flags, /v1/members, /v1/leader, Signals). Timings
// follow the membership defaults: heartbeat 500 ms, suspect after 1.5 s of
// silence, dead 3 s later, graceful leave seen at once.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startNode, socket, join, push, connected, httpGet, sleep, waitFor, Presence,
} from './lib.mjs';
import {
  cli, membersOf, leaderOf, waitViews, stopAll, block, busConnect, mp,
  halfOpenWs, metricValue, seeded, assertExit0,
} from './cluster_lib.mjs';
import { parseExposition, sample } from './prom.mjs';

// Every node any test started, so that a failed test cannot leave
// processes behind (the passing path stops each node with stopAll).
const started = new Set();
async function start(opts) {
  const n = await startNode(opts);
  started.add(n);
  return n;
}
after(async () => {
  for (const n of started) {
    if (!n.exited) { await n.kill9(); }
    n.cleanup();
  }
});

// n1 on 127.0.0.1 is the seed; n2..nk on 127.0.0.2..k join n1's bus.
async function cluster(k, args = []) {
  const nodes = [await start({ host: '127.0.0.1', name: 'n1', args })];
  for (let i = 2; i <= k; i++) {
    nodes.push(await start({ host: `127.0.0.${i}`, name: `n${i}`, join: [nodes[0].bus], args }));
  }
  const all = Object.fromEntries(nodes.map((n) => [n.name, 'alive']));
  await waitViews(nodes, all, 'n1', { timeout: 8000, what: `${k} nodes converged` });
  return nodes;
}

const closeAll = (...socks) => { for (const s of socks) { s.disconnect(); } };
const topicOf = (p) => `comments:${p}-${Date.now().toString(36)}`;

describe('formation from one seed', () => {
  it('3 nodes agree on members and leader, and the CLI prints them', async () => {
    const n1 = await start({ host: '127.0.0.1', name: 'n1' });
    // Sample every leader while the others join: a joiner may say null
    // (it has heard from nobody yet), never a wrong leader.
    const wrong = [];
    let sampling = true;
    const nodes = [n1];
    const sampler = (async () => {
      while (sampling) {
        for (const n of [...nodes]) {
          const l = await n.adminJson('/v1/leader').catch(() => null);
          if (l && l.leader !== null && l.leader !== 'n1') { wrong.push(`${n.name} said ${l.leader}`); }
        }
        await sleep(10);
      }
    })();
    nodes.push(await start({ host: '127.0.0.2', name: 'n2', join: [n1.bus] }));
    nodes.push(await start({ host: '127.0.0.3', name: 'n3', join: [n1.bus] }));
    const t0 = Date.now();
    try {
      await waitViews(nodes, { n1: 'alive', n2: 'alive', n3: 'alive' }, 'n1', { timeout: 5000 });
    } finally {
      sampling = false;
      await sampler;
    }
    const converged = Date.now() - t0;
    const statsNow = await Promise.all(nodes.map((n) => n.adminJson('/v1/stats').then((x) => JSON.stringify(x.cluster), () => '?')));
    const memberLog = nodes.map((n, i) => `--- ${n.name} stats ${statsNow[i]}\n` + n.logs.split('\n').filter((l) => /CLU-|BRK-MEMBER|BRK-CLUSTER/.test(l)).slice(0, 20).join('\n')).join('\n');
    assert.deepEqual([...new Set(wrong)], [], `a node named a leader other than n1 during formation (${wrong.length} samples; converged after ${converged} ms)\n${memberLog}`);
    assert.ok(converged < 3000, `converged after ${converged} ms`);

    for (const n of nodes) {
      // Ready once it has heard every alive peer's replication vector
      // (catch-up before service): vectors go out as members turn alive.
      await waitFor(async () => (await httpGet(`${n.http}/readyz`)).status === 200,
        { timeout: 1500, what: `${n.name} /readyz 200` });

      // parley members --json: exactly the /v1/members body.
      const mj = await cli(['members', '--json', '--admin', `${n.host}:${n.adminPort}`]);
      assert.equal(mj.code, 0, mj.stderr);
      const body = JSON.parse(mj.stdout);
      assert.deepEqual(body, await n.adminJson('/v1/members'));
      assert.equal(body.self, n.name);
      assert.ok(Array.isArray(body.members));
      assert.deepEqual(body.members.map((m) => m.name), ['n1', 'n2', 'n3']);
      for (const m of body.members) {
        const peer = nodes.find((x) => x.name === m.name);
        assert.equal(typeof m.name, 'string');
        assert.equal(m.address, peer.bus, `${n.name}'s address for ${m.name}`);
        assert.equal(m.status, 'alive');
        assert.ok(Number.isSafeInteger(m.incarnation) && m.incarnation > 0, JSON.stringify(m));
      }

      // parley leader --json: exactly the /v1/leader body.
      const lj = await cli(['leader', '--json', '--admin', `${n.host}:${n.adminPort}`]);
      assert.equal(lj.code, 0, lj.stderr);
      const lb = JSON.parse(lj.stdout);
      assert.deepEqual(lb, await n.adminJson('/v1/leader'));
      assert.equal(lb.self, n.name);
      assert.equal(lb.leader, 'n1');
      assert.ok(Number.isSafeInteger(lb.since) && Math.abs(lb.since - Date.now()) < 60000, `since ${lb.since}`);

      // Tables.
      const mt = await cli(['members', '--admin', `${n.host}:${n.adminPort}`]);
      assert.equal(mt.code, 0, mt.stderr);
      const lines = mt.stdout.trim().split('\n');
      assert.match(lines[0], /^NAME\s+ADDRESS\s+STATUS\s+INCARNATION\s*$/);
      assert.equal(lines.length, 4, mt.stdout);
      for (const m of body.members) {
        const row = lines.find((l) => l.split(/\s+/)[0] === m.name);
        assert.ok(row, `no row for ${m.name}:\n${mt.stdout}`);
        const cols = row.trim().split(/\s+/);
        assert.deepEqual(cols.slice(0, 4), [m.name, m.address, m.status, String(m.incarnation)]);
        assert.equal(row.includes('(self)'), m.name === n.name, row);
      }
      const lt = await cli(['leader', '--admin', `${n.host}:${n.adminPort}`]);
      assert.equal(lt.code, 0, lt.stderr);
      assert.equal(lt.stdout.trim(), 'n1');
    }

    // Every node holds the same incarnations.
    const views = await Promise.all(nodes.map(membersOf));
    for (const v of views.slice(1)) { assert.deepEqual(v.inc, views[0].inc); }

    // The CLI against nothing fails cleanly.
    const bad = await cli(['members', '--json', '--admin', '127.0.0.1:1']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /cannot reach/);

    await stopAll(nodes, assert);
  });

  it('a node whose seed is unreachable stays unready and names no leader at first', async () => {
    const lone = await start({ host: '127.0.0.4', name: 'lone', join: ['tcp://127.0.0.9:9'] });
    const r = await httpGet(`${lone.http}/readyz`);
    assert.equal(r.status, 503, r.text);
    const l = await lone.adminJson('/v1/leader');
    assert.equal(l.leader, null, 'claimed a leader before hearing from anyone');
    await sleep(2000);
    assert.equal((await httpGet(`${lone.http}/readyz`)).status, 503, 'ready without ever joining');
    await stopAll([lone], assert);
  });
});

describe('leader failure and restart', () => {
  it('kill -9 of leader n1: n2 leads within 5 s; n1 restarts, rejoins with a higher incarnation, and n2 keeps leading', async () => {
    const nodes = await cluster(3);
    const [n1, n2, n3] = nodes;
    const topic = topicOf('crash');
    // k on n1 (dies with it), x on n2 watching.
    const k = socket(n1, 'k', { reconnectAfterMs: () => 60000 });
    const x = socket(n2, 'x');
    const socks = [k, x];
    try {
      await Promise.all([connected(k), connected(x)]);
      const xch = x.channel(topic);
      const xp = new Presence(xch);
      await join(xch);
      await join(k.channel(topic));
      const xkeys = () => xp.list((key) => key).sort().join(',');
      await waitFor(() => xkeys() === 'k,x', { timeout: 5000, what: `x sees k (have ${xkeys()})` });
      const before = (await membersOf(n2)).inc.n1;

      const t0 = Date.now();
      await n1.kill9();
      await waitViews([n2, n3], { n1: 'dead', n2: 'alive', n3: 'alive' }, 'n2', { timeout: 5000 - (Date.now() - t0), what: 'n1 dead and n2 leading on n2, n3' });
      const took = Date.now() - t0;
      await waitFor(() => xkeys() === 'x', { timeout: 1000, what: `k gone from n2 once n1 is dead (have ${xkeys()})` });

      // Same name, host, ports and data directory: the same command line.
      const again = await start({
        host: n1.host, name: 'n1', port: n1.port, adminPort: n1.adminPort, busPort: n1.busPort, directPort: n1.directPort, data: n1.data,
      });
      const t1 = Date.now();
      const trio = [again, n2, n3];
      // Leadership is sticky: the restarted n1 is now the youngest member.
      await waitViews(trio, { n1: 'alive', n2: 'alive', n3: 'alive' }, 'n2', { timeout: 10000, what: 'n1 back, n2 still leading' });
      const back = Date.now() - t1;
      for (const n of trio) {
        const v = await membersOf(n);
        assert.ok(v.inc.n1 > before, `${n.name} has n1 incarnation ${v.inc.n1}, was ${before}`);
      }
      const rb = await httpGet(`${again.http}/readyz`);
      assert.equal(rb.status, 200);

      // The restarted node got the others' presence state: a new client on
      // it sees x (on n2), and x sees the newcomer.
      const y = socket(again, 'y');
      socks.push(y);
      await connected(y);
      const ych = y.channel(topic);
      const yp = new Presence(ych);
      await join(ych);
      const ykeys = () => yp.list((key) => key).sort().join(',');
      await waitFor(() => ykeys() === 'x,y', { timeout: 5000, what: `y on the restarted n1 sees x (have ${ykeys()})` });
      await waitFor(() => xkeys() === 'x,y', { timeout: 5000, what: `x sees y (have ${xkeys()})` });
      console.log(`# kill -9 -> n1 dead and n2 leader after ${took} ms; restarted n1 back after ${back} ms (n2 still leads)`);
      closeAll(...socks);
      await stopAll([again, n2, n3], assert);
    } finally { closeAll(...socks); }
    n1.cleanup();
  });
});

describe('graceful leave', () => {
  it('SIGTERM and `parley leave` are seen as "left" within 1 s and their presences vanish', async () => {
    const nodes = await cluster(4);
    const [n1, n2, n3, n4] = nodes;
    const topic = topicOf('lobby');
    const w = socket(n2, 'w');
    const u1 = socket(n1, 'u1', { reconnectAfterMs: () => 60000 });
    const u3 = socket(n3, 'u3', { reconnectAfterMs: () => 60000 });
    try {
      await Promise.all([connected(w), connected(u1), connected(u3)]);
      const wch = w.channel(topic);
      const presence = new Presence(wch);
      await join(wch);
      await join(u1.channel(topic));
      await join(u3.channel(topic));
      const keys = () => presence.list((k) => k).sort().join(',');
      await waitFor(() => keys() === 'u1,u3,w', { timeout: 5000, what: `presences u1,u3,w on n2 (have ${keys()})` });

      // SIGTERM n3.
      let t0 = Date.now();
      n3.proc.kill('SIGTERM');
      await waitViews([n1, n2, n4], { n1: 'alive', n2: 'alive', n3: 'left', n4: 'alive' }, 'n1', { timeout: 1000, interval: 20, what: 'n3 left' });
      const leftIn = Date.now() - t0;
      await waitFor(() => keys() === 'u1,w', { timeout: Math.max(1, 1000 - (Date.now() - t0)), interval: 10, what: `u3 gone from n2 (have ${keys()})` });
      const goneIn = Date.now() - t0;
      await assertExit0(n3, assert);

      // `parley leave --admin` on the leader n1: it keeps running but is
      // out of the cluster, and n2 leads at once.
      t0 = Date.now();
      const out = await cli(['leave', '--admin', `${n1.host}:${n1.adminPort}`]);
      assert.equal(out.code, 0, out.stderr);
      await waitViews([n2, n4], { n1: 'left', n2: 'alive', n3: 'left', n4: 'alive' }, 'n2', { timeout: 1000, interval: 20, what: 'n1 left, n2 leads' });
      const left1 = Date.now() - t0;
      await waitFor(() => keys() === 'w', { timeout: 1000, interval: 10, what: `u1 gone from n2 (have ${keys()})` });
      console.log(`# SIGTERM n3 seen left after ${leftIn} ms, presence gone after ${goneIn} ms; parley leave n1 seen after ${left1} ms`);
    } finally { closeAll(w, u1, u3); }
    n3.cleanup();
    await stopAll([n1, n2, n4], assert);
  });
});

describe('garbage on the bus', () => {
  it('random bytes, bad handshakes and malformed msgpack: the node survives, stays a member and counts them', async () => {
    const nodes = await cluster(2);
    const [n1, n2] = nodes;
    const s0 = (await n2.adminJson('/v1/stats')).cluster;
    const rnd = seeded(42);
    const results = {};

    // 1. Random bytes with no SP handshake.
    let c = await busConnect(n2, { handshake: false });
    c.write(rnd.bytes(65536));
    results.random = await c.closedWithin(3000);
    // 2. An SP header for another protocol (req0 = 0x30).
    c = await busConnect(n2, { handshake: false });
    c.write(Buffer.from([0, 0x53, 0x50, 0, 0, 0x30, 0, 0]));
    results.wrongProto = await c.closedWithin(3000);
    // 3. bus0 handshake, then a declared length far over the receive limit.
    c = await busConnect(n2);
    assert.deepEqual([...c.peerHeader], [0, 0x53, 0x50, 0, 0, 0x70, 0, 0], 'the node answers as bus0');
    const huge = Buffer.alloc(8); huge.writeBigUInt64BE(1n << 40n);
    c.write(Buffer.concat([huge, rnd.bytes(1000)]));
    results.huge = await c.closedWithin(3000);

    // 4. Malformed messages, a few per connection (10 within 10 s cut a
    // connection off, tested below).
    const hdr = ['evil', 1, 1, 1, null, []];
    const malformed = [
      rnd.bytes(1), rnd.bytes(100), rnd.bytes(5000),
      mp([]), mp([1]), mp('hello'), mp({ a: 1 }), mp(null), mp(3),
      mp([1, 1]), // too short
      mp([0, 1, ...hdr, []]), // version 0
      mp([1, 1, 123, 1, 1, 1, null, [], []]), // sender not a string
      mp([1, 1, '', 1, 1, 1, null, [], []]), // empty sender
      mp([1, 1, 'x'.repeat(65), 1, 1, 1, null, [], []]), // sender too long
      mp([1, 1, 'bad name', 1, 1, 1, null, [], []]), // space in name
      mp([1, 1, 'evil', -1, 1, 1, null, [], []]), // negative incarnation
      mp([1, 1, 'evil', 1, 1, 1, 7, [], []]), // dest not a string
      mp([1, 1, 'evil', 1, 1, 1, null, Array(17).fill('a'), []]), // skip list too long
      mp([1, 1, ...hdr]), // ping without digest
      mp([1, 1, ...hdr, [['m', 'tcp://x:1', 9, 1, 1]]]), // status 9
      mp([1, 1, ...hdr, [['m', 'tcp://x:1', 0]]]), // short member
      mp([1, 1, ...hdr, [[]]]),
      mp([1, 1, ...hdr, Array(1025).fill(['m', '', 0, 1, 1])]), // digest over 1024
      mp([1, 4, ...hdr, 'comments:x', 'new_comment', 'x', 'evil']), // short broadcast
      mp([1, 4, ...hdr, 'comments:x', 'new_comment', 42, 'evil', 1]), // payload not bytes
      mp([1, 4, ...hdr, 'a\u0000b', 'new_comment', '{}', 'evil', 1]), // NUL in topic
      mp([1, 5, ...hdr, -3, 'x']), // app kind negative
      mp([1, 3, 'evil', 1, 1, 'seq', null, []]), // leave with a string seq
      mp([1, 3, ...hdr]).subarray(0, 10), // truncated
      Buffer.from([0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x90]), // deep nesting
      Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]), // array claiming 4G elements
      Buffer.from([0xdf, 0x7f, 0xff, 0xff, 0xff, 0x01]), // map claiming 2G pairs
      Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xf0, 0x41]), // str32 claiming 4G
      Buffer.from([0xc1]), // never-used byte
    ];
    for (let i = 0; i < malformed.length; i += 8) {
      c = await busConnect(n2);
      for (const m of malformed.slice(i, i + 8)) { c.message(m); }
      await sleep(50);
      c.end();
    }
    // 5. Versions and kinds this build does not know are skipped, not
    // malformed.
    c = await busConnect(n2);
    c.message(mp([99, 1, 'whatever', { future: true }]));
    c.message(mp([1, 77, ...hdr, 'future body']));
    await sleep(50);
    c.end();
    // 6. More than 10 malformed messages on one connection: cut off.
    c = await busConnect(n2);
    for (let i = 0; i < 15; i++) { c.message(rnd.bytes(20)); }
    results.cutOff = await c.closedWithin(3000);

    assert.deepEqual(results, { random: true, wrongProto: true, huge: true, cutOff: true }, 'connections the node should have closed');
    const s1 = await waitFor(async () => {
      const s = (await n2.adminJson('/v1/stats')).cluster;
      return s.malformed - s0.malformed >= malformed.length + 11 ? s : null;
    }, { timeout: 3000, what: 'malformed counted' }).catch(async () => (await n2.adminJson('/v1/stats')).cluster);
    const counted = s1.malformed - s0.malformed;
    assert.ok(counted >= malformed.length + 11,
      `malformed counted ${counted}, sent ${malformed.length} + 15 on the cut-off connection; stats ${JSON.stringify(s1)}`);
    assert.ok(s1.unknown - s0.unknown >= 2, `unknown counted ${s1.unknown - s0.unknown}`);
    assert.ok(s1.cut_off_peers - s0.cut_off_peers >= 1, `cut_off_peers ${s1.cut_off_peers}`);
    const metrics = (await httpGet(`${n2.admin}/metrics`)).text;
    assert.equal(sample(parseExposition(metrics), 'parley_cluster_messages_discarded_total', { reason: 'malformed' }),
      s1.malformed, 'metrics and stats agree');

    // Still one healthy cluster: nobody was ever suspected, no stray member
    // was learnt, a comment still crosses.
    const v1 = await membersOf(n1); const v2 = await membersOf(n2);
    const logsOf = (n) => n.logs.split('\n').filter((l) => !/CLU-MALFORMED/.test(l)).slice(-15).join('\n');
    const ctx = `\nn1 view ${JSON.stringify(v1.body)}\nn2 view ${JSON.stringify(v2.body)}\n--- n1\n${logsOf(n1)}\n--- n2\n${logsOf(n2)}`;
    assert.deepEqual(v1.status, { n1: 'alive', n2: 'alive' }, `n1's view changed${ctx}`);
    assert.deepEqual(v2.status, { n1: 'alive', n2: 'alive' }, `n2's view changed${ctx}`);
    assert.equal(s1.members_suspect, 0);
    const topic = topicOf('garbage');
    const a = socket(n1, 'ga'); const b = socket(n2, 'gb');
    try {
      await Promise.all([connected(a), connected(b)]);
      const [ca, cb] = [a.channel(topic), b.channel(topic)];
      await join(ca); await join(cb);
      const got = new Promise((r) => cb.on('new_comment', r));
      const r = await push(ca, 'new_comment', { content: 'after the garbage' });
      assert.equal(r.status, 'ok', JSON.stringify(r));
      assert.equal((await got).content, 'after the garbage');
    } finally { closeAll(a, b); }
    assert.equal((await httpGet(`${n2.http}/readyz`)).status, 200);
    console.log(`# bus garbage: malformed +${counted}, unknown +${s1.unknown - s0.unknown}, cut off +${s1.cut_off_peers - s0.cut_off_peers}`);
    await stopAll(nodes, assert);
  });
});

describe('cross-node comments', () => {
  it('a client on n1 gets 1,000 comments posted through n3 once each, in order', async () => {
    const nodes = await cluster(3, ['--rate-limit', '1000000/60']);
    const [n1, n2, n3] = nodes;
    const topic = topicOf('order');
    const watchers = [socket(n1, 'w1'), socket(n2, 'w2')];
    const p3 = socket(n3, 'p3');
    const p2 = socket(n2, 'p2');
    const all = [...watchers, p3, p2];
    try {
      await Promise.all(all.map((s) => connected(s)));
      const logs = [];
      for (const w of watchers) {
        const ch = w.channel(topic);
        const log = [];
        ch.on('new_comment', (m) => log.push(m));
        await join(ch);
        logs.push(log);
      }
      const own = [];
      const c3 = p3.channel(topic);
      c3.on('new_comment', (m) => own.push(m));
      await join(c3);
      const c2 = p2.channel(topic);
      await join(c2);

      // Posts count comments keeping `window` in flight; returns reply ids
      // in posting order.
      const post = async (ch, prefix, count, window) => {
        const ids = new Array(count);
        let next = 0;
        const worker = async () => {
          while (next < count) {
            const i = next++;
            const r = await push(ch, 'new_comment', { content: `${prefix}-${i}` }, 20000);
            if (r.status !== 'ok') { throw new Error(`${prefix}-${i}: ${JSON.stringify(r)}`); }
            ids[i] = r.response.id;
          }
        };
        await Promise.all(Array.from({ length: window }, worker));
        return ids;
      };
      const t0 = Date.now();
      const [ids3, ids2] = await Promise.all([post(c3, 'p3', 1000, 50), post(c2, 'p2', 200, 10)]);
      const posted = Date.now() - t0;
      const total = 1200;
      for (const [k, log] of logs.entries()) {
        try {
          await waitFor(() => log.length >= total, { timeout: 10000 });
        } catch {
          const have = new Set(log.map((m) => m.content));
          const missing = [...ids3.map((_, i) => `p3-${i}`), ...ids2.map((_, i) => `p2-${i}`)].filter((c) => !have.has(c));
          const stats = await Promise.all(nodes.map(async (n) => `${n.name} ${JSON.stringify((await n.adminJson('/v1/stats')).cluster)}`));
          assert.fail(`watcher on ${nodes[k].name} got ${log.length} of ${total} comments; missing ${missing.length}: ` +
            `${missing.slice(0, 30).join(' ')}\ncluster stats:\n${stats.join('\n')}`);
        }
      }
      await waitFor(() => own.length >= 1000, { timeout: 10000, what: `p3's own copies ${own.length}` });
      const delivered = Date.now() - t0;
      await sleep(300); // anything extra would be a duplicate
      for (const [k, log] of [...logs.entries(), [2, own]]) {
        const mine = (p) => log.filter((m) => m.content.startsWith(`${p}-`));
        for (const [p, ids, count] of [['p3', ids3, 1000], ['p2', ids2, 200]]) {
          const seq = mine(p);
          if (k === 2 && p === 'p2') { continue; }
          assert.equal(seq.length, count, `log ${k}: ${seq.length} of ${count} from ${p}`);
          const order = seq.map((m) => Number(m.content.split('-')[1]));
          const firstBad = order.findIndex((x, i) => x !== i);
          assert.equal(firstBad, -1, `log ${k}: ${p} out of order at ${firstBad}: ${order.slice(Math.max(0, firstBad - 3), firstBad + 3)}`);
          assert.deepEqual(seq.map((m) => m.id), ids, `log ${k}: ids from ${p} differ from the replies`);
          assert.ok(seq.every((m) => m.user_id === p && typeof m.inserted_at === 'number'));
        }
        assert.equal(new Set(log.map((m) => m.id)).size, log.length, `log ${k}: duplicates`);
      }
      // Ids sort by creation time: one publisher's ids ascend.
      assert.deepEqual([...ids3].sort(), ids3, 'p3 ids ascend');
      console.log(`# 1,200 comments (1,000 + 200 concurrently): posted in ${posted} ms, delivered everywhere in ${delivered} ms`);
    } finally { closeAll(...all); }
    await stopAll(nodes, assert);
  });
});

describe('partition', () => {
  it('n1 cut off from n2 and n3: two views, two leaders; heal: one view, leader n1', async () => {
    const nodes = await cluster(3, ['--cluster-test-hooks']);
    const [n1, n2, n3] = nodes;
    // a on n1, b on n2, c on n3 share a topic: comments and presence.
    const topic = topicOf('split');
    const s = [socket(n1, 'a'), socket(n2, 'b'), socket(n3, 'c')];
    try {
      await Promise.all(s.map((x) => connected(x)));
      const chans = s.map((x) => x.channel(topic));
      const logs = chans.map((ch) => { const l = []; ch.on('new_comment', (m) => l.push(m.content)); return l; });
      const pres = chans.map((ch) => new Presence(ch));
      const leaves = [[], [], []];
      let phase = 'joined';
      pres.forEach((p, i) => p.onLeave((key, cur) => { if (!cur) { leaves[i].push(`${key}@${phase}`); } }));
      for (const ch of chans) { await join(ch); }
      const keys = (i) => pres[i].list((k) => k).sort().join(',');
      await waitFor(() => [0, 1, 2].every((i) => keys(i) === 'a,b,c'), { timeout: 5000, what: 'every client sees a,b,c' });

      phase = 'split';
      const t0 = Date.now();
      await block(n1, n2, true);
      await block(n1, n3, true);
      await Promise.all([
        waitViews([n1], { n1: 'alive', n2: 'dead', n3: 'dead' }, 'n1', { timeout: 8000, what: 'n1 alone' }),
        waitViews([n2, n3], { n1: 'dead', n2: 'alive', n3: 'alive' }, 'n2', { timeout: 8000, what: 'n2+n3 without n1' }),
      ]);
      const split = Date.now() - t0;
      // Presences follow the views: a is alone; b and c lost a.
      await waitFor(() => keys(0) === 'a' && keys(1) === 'b,c' && keys(2) === 'b,c',
        { timeout: 2000, what: `presence split (have ${[0, 1, 2].map(keys).join(' | ')})` });
      // Stable for a while (no flapping while blocked).
      await sleep(1000);
      assert.deepEqual((await membersOf(n1)).status, { n1: 'alive', n2: 'dead', n3: 'dead' });
      assert.deepEqual((await membersOf(n2)).status, { n1: 'dead', n2: 'alive', n3: 'alive' });
      assert.equal((await leaderOf(n3)).leader, 'n2');

      // While split, a comment on n2 reaches n3 but not n1.
      assert.equal((await push(chans[1], 'new_comment', { content: 'during' })).status, 'ok');
      await waitFor(() => logs[2].includes('during'), { timeout: 3000, what: 'n3 gets the comment from n2' });
      await sleep(300);
      assert.deepEqual(logs[0], [], 'n1 got a broadcast through the partition');

      phase = 'heal';
      const t1 = Date.now();
      await block(n1, n2, false);
      await block(n1, n3, false);
      await waitViews(nodes, { n1: 'alive', n2: 'alive', n3: 'alive' }, 'n1', { timeout: 10000, what: 'healed' });
      const healed = Date.now() - t1;
      assert.equal((await push(chans[0], 'new_comment', { content: 'after' })).status, 'ok');
      await waitFor(() => logs[1].includes('after') && logs[2].includes('after'), { timeout: 3000, what: 'comment from n1 after the heal' });
      await waitFor(() => [0, 1, 2].every((i) => keys(i) === 'a,b,c'),
        { timeout: 5000, what: `presence healed (have ${[0, 1, 2].map(keys).join(' | ')})` });
      await sleep(500);
      console.log(`# partition: views split after ${split} ms; healed after ${healed} ms; presence leaves seen ${JSON.stringify(leaves)}`);
      // n2 and n3 never lost sight of each other: their users must not
      // have left anywhere on that side, before or after the heal.
      assert.deepEqual(leaves[1].filter((x) => x.startsWith('c@')), [], `b (on n2) saw c (on n3) leave: ${JSON.stringify(leaves)}`);
      assert.deepEqual(leaves[2].filter((x) => x.startsWith('b@')), [], `c (on n3) saw b (on n2) leave: ${JSON.stringify(leaves)}`);
      const flaps = nodes.flatMap((n) => n.logs.split('\n').filter((l) => /\[BRK-MEMBER\] member n[23]: alive -> dead/.test(l) && /\b(n2|n3) info/.test(l)));
      assert.deepEqual(flaps, [], 'n2/n3 declared each other dead on the heal (they never lost contact)');
    } finally { closeAll(...s); }
    await stopAll(nodes, assert);
  });

  it('the test hook is off without --cluster-test-hooks', async () => {
    const n = await start({ host: '127.0.0.5', name: 'solo' });
    const res = await fetch(`${n.admin}/v1/test/block?peer=x&on=1`, { method: 'POST' });
    assert.equal(res.status, 404);
    await stopAll([n], assert);
  });
});

describe('drain', () => {
  it('SIGTERM with phoenix clients: close 1012, the node leaves, presences vanish, exit 0', async () => {
    const nodes = await cluster(2);
    const [n1, n2] = nodes;
    const topic = topicOf('drain');
    const w = socket(n1, 'watch');
    const c1 = socket(n2, 'c1', { reconnectAfterMs: () => 60000 });
    const c2 = socket(n2, 'c2', { reconnectAfterMs: () => 60000 });
    try {
      await Promise.all([connected(w), connected(c1), connected(c2)]);
      const wch = w.channel(topic);
      const presence = new Presence(wch);
      await join(wch);
      await join(c1.channel(topic));
      await join(c2.channel('presence:c2', { device_id: 'd1' }));
      const keys = () => presence.list((k) => k).sort().join(',');
      await waitFor(() => keys() === 'c1,watch', { timeout: 5000, what: `c1 visible on n1 (have ${keys()})` });
      const closes = [c1, c2].map((s) => new Promise((r) => s.onClose((e) => r(e))));
      const t0 = Date.now();
      n2.proc.kill('SIGTERM');
      const codes = (await Promise.all(closes)).map((e) => e.code);
      assert.deepEqual(codes, [1012, 1012]);
      await waitViews([n1], { n1: 'alive', n2: 'left' }, 'n1', { timeout: 1000, interval: 20, what: 'n2 left' });
      await waitFor(() => keys() === 'watch', { timeout: 1000, interval: 10, what: `c1 gone on n1 (have ${keys()})` });
      await assertExit0(n2, assert);
      console.log(`# drain: exited ${Date.now() - t0} ms after SIGTERM`);
      n2.cleanup();
    } finally { closeAll(w, c1, c2); }
    await stopAll([n1], assert);
  });

  it('/readyz answers 503 while a drain is under way', async () => {
    const n = await start({ host: '127.0.0.6', name: 'dr' });
    // A client that never finishes the closing handshake keeps the drain
    // open for a while (the node lingers ~2 s for it).
    const slow = await halfOpenWs(n);
    slow.heartbeat();
    await sleep(50);
    const t0 = Date.now();
    n.proc.kill('SIGTERM');
    const seen = [];
    while (!n.exited && Date.now() - t0 < 5000) {
      const [pub, adm] = await Promise.all([
        fetch(`${n.http}/readyz`, { signal: AbortSignal.timeout(300) }).then((r) => r.status, (e) => e.cause?.code || e.name),
        fetch(`${n.admin}/metrics`, { signal: AbortSignal.timeout(300) }).then((r) => r.text(), () => '').then((t) => metricValue(t, 'parley_ready')),
      ]);
      if (!n.exited) { seen.push({ t: Date.now() - t0, readyz: pub, metrics_ready: adm }); }
      await sleep(30);
    }
    slow.destroy();
    await assertExit0(n, assert);
    n.cleanup();
    const during = seen.filter((s) => s.metrics_ready === 0);
    assert.ok(during.length > 0, `the admin port never showed parley_ready 0: ${JSON.stringify(seen)}`);
    assert.ok(seen.some((s) => s.readyz === 503), `GET /readyz during the drain never answered 503: ${JSON.stringify(seen.slice(0, 8))}`);
    assert.ok(!seen.some((s) => s.readyz === 200), `GET /readyz answered 200 during the drain: ${JSON.stringify(seen)}`);
  });
});
