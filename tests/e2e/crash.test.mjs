// SPDX-License-Identifier: Apache-2.0
// Durability of acknowledged comments under a crash: clients post as fast as
// the node acknowledges, the node is killed with SIGKILL mid-stream, and
// after a restart on the same data dir every acknowledged comment must be in
// the history, in order (design.md: "reply ok once the comment is durable").
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startNode, socket, connected, sleep } from './lib.mjs';
import { uniq, readHistory, strictlyIncreasing, stopCleanFast } from './comments_lib.mjs';

const USERS = 4;
const IN_FLIGHT = 20; // per user, so 80 pushes outstanding

// Starts USERS posters on `topic`; each keeps IN_FLIGHT pushes outstanding
// until stop() is called. Acks are recorded as they arrive.
function flood(node, topic, cycle) {
  const acked = []; // {id, content, user}, in arrival order
  let stopped = false, errors = 0;
  const socks = [];
  const ready = [];
  const pending = new Set(); // pushes whose 30 s timers must not outlive the test
  for (let u = 0; u < USERS; u++) {
    const user = `crasher${u}`;
    // No reconnect: once the node dies, this client is done.
    const s = socket(node, user, { reconnectAfterMs: () => 3600000, rejoinAfterMs: () => 3600000 });
    socks.push(s);
    const ch = s.channel(topic);
    let seq = 0;
    const one = () => {
      if (stopped) return;
      const content = `c${cycle} ${user} #${seq++}`;
      const p = ch.push('new_comment', { content }, 30000);
      pending.add(p);
      p.receive('ok', () => pending.delete(p)).receive('error', () => pending.delete(p));
      p.receive('ok', (r) => { if (!stopped) { acked.push({ id: r.id, content, user }); one(); } else acked.push({ id: r.id, content, user }); })
        .receive('error', () => { errors++; if (!stopped) setTimeout(one, 10); });
    };
    ready.push(new Promise((resolve, reject) => {
      ch.join().receive('ok', () => { for (let k = 0; k < IN_FLIGHT; k++) one(); resolve(); })
        .receive('error', (e) => reject(new Error(`join: ${JSON.stringify(e)}`)));
    }));
  }
  return {
    acked, ready: Promise.all(ready), errors: () => errors,
    stop() {
      stopped = true;
      for (const s of socks) s.disconnect();
      for (const p of pending) p.cancelTimeout();
    },
  };
}

describe('crash durability', () => {
  it('every acknowledged comment survives kill -9 (two cycles)', async () => {
    const topic = `comments:${uniq('crash')}`;
    let node = await startNode({ args: ['--rate-limit', '1000000/60'] });
    const data = node.data;
    const allAcked = [];
    const counts = [];
    try {
      for (let cycle = 0; cycle < 2; cycle++) {
        const f = flood(node, topic, cycle);
        await f.ready;
        // Wait for the first acks, then let the stream run about one second.
        const t0 = Date.now();
        while (f.acked.length === 0 && Date.now() - t0 < 5000) await sleep(10);
        assert.ok(f.acked.length > 0, `no ack within 5 s\n${node.logs.slice(-2000)}`);
        await sleep(1000);
        const before = f.acked.length;
        await node.kill9();
        // Acks that were already on the wire may still be read after the kill.
        await sleep(100);
        f.stop();
        const acked = [...f.acked];
        counts.push({ cycle, ackedBeforeKill: before, acked: acked.length, refused: f.errors() });
        allAcked.push(...acked);

        node = await startNode({ data, args: ['--rate-limit', '1000000/60'] });
        const s = socket(node, 'auditor');
        await connected(s);
        const { comments, pages } = await readHistory(s.channel(topic, { limit: 200 }));
        s.disconnect();
        const ids = comments.map((c) => c.id);
        assert.equal(strictlyIncreasing(ids), null, 'history ids strictly increasing');
        const byId = new Map(comments.map((c) => [c.id, c]));
        const missing = allAcked.filter((a) => !byId.has(a.id));
        assert.equal(missing.length, 0,
          `cycle ${cycle}: ${missing.length} of ${allAcked.length} acknowledged comments lost, e.g. ${JSON.stringify(missing.slice(0, 3))}`);
        for (const a of allAcked) {
          const c = byId.get(a.id);
          assert.equal(c.content, a.content, `content of ${a.id}`);
          assert.equal(c.user_id, a.user);
        }
        // Per client, acks arrive in posting order; so must the history.
        for (let u = 0; u < USERS; u++) {
          const mine = comments.filter((c) => c.user_id === `crasher${u}` && c.content.startsWith(`c${cycle} `));
          const seqs = mine.map((c) => Number(c.content.split('#')[1]));
          assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), `crasher${u} history order`);
          const ackedSeqs = acked.filter((a) => a.user === `crasher${u}`).map((a) => Number(a.content.split('#')[1]));
          assert.deepEqual(seqs.slice(0, ackedSeqs.length), [...ackedSeqs].sort((x, y) => x - y),
            `crasher${u}: acknowledged comments are a prefix of the history`);
        }
        counts[cycle].history = comments.length;
        counts[cycle].pages = pages.length;
      }
      console.log(`# crash cycles: ${JSON.stringify(counts)}`);
      await stopCleanFast(node, assert, { keepData: true });
    } finally {
      if (!node.exited) await node.kill9();
      rmSync(data, { recursive: true, force: true });
    }
  });
});
