// SPDX-License-Identifier: Apache-2.0
// Leadership and leaving, with real processes: a rolling restart of three
// nodes (SIGTERM, same command line again, as a StatefulSet update does)
// moves the leader exactly once per restart of the leader and never for
// the others, and never back when the old leader returns; after `parley
// leave` a node answers /readyz 503 and refuses new upgrades while its
// open sockets keep working.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  startNode, rawOpen, rawHeartbeat, raw, token, sleep, httpGet,
} from './lib.mjs';
import { cli, waitViews, stopAll, assertExit0, leaderOf } from './cluster_lib.mjs';
import { parseExposition, sample } from './prom.mjs';

const changes = (n) => (n.logs.match(/\[CLU-LEADER\] leader is now/g) || []).length;

describe('sticky leader', () => {
  it('a rolling restart of 3 nodes moves the leader once per restart of the leader, none for the others', { timeout: 180000 }, async () => {
    const spec = [1, 2, 3].map((i) => ({ host: `127.0.0.${i}`, name: `n${i}` }));
    const nodes = {};
    nodes.n1 = await startNode(spec[0]);
    for (const s of spec.slice(1)) nodes[s.name] = await startNode({ ...s, join: [nodes.n1.bus] });
    const all = () => Object.values(nodes);
    const alive = { n1: 'alive', n2: 'alive', n3: 'alive' };
    await waitViews(all(), alive, 'n1', { timeout: 10000, what: 'formed, n1 leads' });
    const seeds = [nodes.n1.bus, nodes.n2.bus, nodes.n3.bus];
    const moves = [];
    let leader = 'n1';
    try {
      // A StatefulSet updates the highest ordinal first; then a second
      // round, which restarts the leader every time.
      for (const name of ['n3', 'n2', 'n1', 'n3', 'n2', 'n1']) {
        const old = nodes[name];
        const others = all().filter((n) => n !== old);
        const before = new Map(others.map((n) => [n.name, changes(n)]));
        old.proc.kill('SIGTERM');
        await assertExit0(old, assert);
        nodes[name] = await startNode({
          host: old.host, name, port: old.port, adminPort: old.adminPort, busPort: old.busPort, directPort: old.directPort,
          data: old.data, join: seeds,
        });
        // Expected: the role moves only if the restarted node held it, to
        // the oldest survivor, which started before everyone restarted
        // after it.
        const expected = name === leader ? others.map((n) => n.name).sort((a, b) => order.indexOf(a) - order.indexOf(b))[0] : leader;
        await waitViews(all(), alive, expected, { timeout: 15000, what: `after restarting ${name}, ${expected} leads` });
        await sleep(2000); // long enough for a move back to show
        for (const n of all()) assert.equal((await leaderOf(n)).leader, expected, `${n.name} after the pause`);
        for (const n of others) {
          const moved = changes(n) - before.get(n.name);
          assert.equal(moved, name === leader ? 1 : 0,
            `restart of ${name} (leader ${leader}): ${n.name} saw ${moved} leader changes\n` +
            n.logs.split('\n').filter((l) => /CLU-LEADER/.test(l)).join('\n'));
        }
        moves.push(`${name}${name === leader ? ` (leader: -> ${expected})` : ''}`);
        leader = expected;
        // The restarted node is now the youngest.
        order.splice(order.indexOf(name), 1);
        order.push(name);
      }
      console.log(`# rolling restarts: ${moves.join(', ')}`);
    } finally {
      await stopAll(all(), assert);
    }
  });
});

// Start order of the live instances, oldest first (the leader is first).
const order = ['n1', 'n2', 'n3'];

describe('parley leave', () => {
  it('/readyz turns 503, new upgrades get 503, open sockets keep working', async () => {
    const a = await startNode({ name: 'la' });
    const b = await startNode({ name: 'lb', host: '127.0.0.2', join: [a.bus] });
    try {
      await waitViews([a, b], { la: 'alive', lb: 'alive' }, 'la', { timeout: 10000 });
      const open = await rawOpen(b, { user: 'stays' });
      assert.equal((await httpGet(`${b.http}/readyz`)).status, 200);
      const r = await cli(['leave', '--admin', `${b.host}:${b.adminPort}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await httpGet(`${b.http}/readyz`)).status, 503);
      const ws = raw(b, { query: `vsn=2.0.0&token=${token('newcomer')}` });
      ws.on('error', () => {});
      await assert.rejects(ws.opened, (e) => e.status === 503);
      await rawHeartbeat(open);
      const m = parseExposition(await (await fetch(`${b.admin}/metrics`)).text());
      assert.equal(sample(m, 'parley_ready'), 0);
      assert.equal(sample(m, 'parley_upgrades_refused_total', { reason: 'draining' }), 1);
      assert.match(b.logs, /\[BRK-LEAVE\] left the cluster/);
      await waitViews([a], { la: 'alive', lb: 'left' }, 'la', { timeout: 3000 });
      open.close();
    } finally { await stopAll([a, b], assert); }
  });
});
