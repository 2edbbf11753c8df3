// SPDX-License-Identifier: Apache-2.0
// Limits that keep hostile or slow clients from hurting everyone else
// (issue 12): a handshake's deadline runs from accept whatever it sends,
// handshakes per source address are capped, health checks answer when every
// slot is taken, one user cannot hold every socket, and stalled subscribers
// cannot make the node's queued output grow past --max-queued-bytes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import {
  startNode, stopCleanNow, socket, connected, join, push, raw, rawOpen, rawJoin, rawHeartbeat,
  wsHandshake, httpGet, httpRaw, token, sleep, waitFor,
} from './lib.mjs';
import { postMany, uniq } from './comments_lib.mjs';

// Opens a TCP connection from `localAddress` and sends the start of an
// upgrade request; resolves once connected. s.ended turns true when the
// server closes it.
function halfOpen(node, localAddress = '127.0.0.1') {
  return new Promise((resolve) => {
    const s = net.connect({ port: node.port, host: node.host, localAddress });
    s.ended = false;
    s.on('error', () => {});
    s.on('close', () => { s.ended = true; });
    s.on('connect', () => {
      s.write(`GET /socket/websocket?vsn=2.0.0&token=${token('slow')} HTTP/1.1\r\nHost: x\r\n`);
      resolve(s);
    });
  });
}

const stats = (node) => node.adminJson('/v1/stats');
// Anonymous memory only: LMDB's mapped file pages are not what is measured.
const rssKiB = (pid) => Number(/RssAnon:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

describe('handshakes', () => {
  it('the handshake deadline runs from accept: bytes received do not extend it', async () => {
    const node = await startNode({ args: ['--handshake-timeout', '2'] });
    try {
      const s = await halfOpen(node);
      const t0 = Date.now();
      // One header byte every 300 ms: each used to restart a 10 s timer.
      const trickle = setInterval(() => { if (!s.ended) s.write('X'); }, 300);
      await waitFor(() => s.ended, { timeout: 8000, what: 'the trickling handshake to be closed' });
      clearInterval(trickle);
      const took = Date.now() - t0;
      assert.ok(took >= 1500 && took < 4500, `closed after ${took} ms with --handshake-timeout 2`);
      assert.ok((await stats(node)).limits.handshake_timeouts >= 1);
      // An honest client is unaffected.
      const ws = await rawOpen(node, { user: 'honest' });
      await rawHeartbeat(ws);
      ws.close();
    } finally { await stopCleanNow(node, assert); }
  });

  it('handshakes per source address are capped; other addresses still get in', async () => {
    const node = await startNode({ args: ['--max-handshakes-per-ip', '20'] });
    try {
      const socks = await Promise.all(Array.from({ length: 50 }, () => halfOpen(node, '127.0.0.5')));
      await waitFor(() => socks.filter((s) => s.ended).length >= 30, { timeout: 5000, what: 'connections over the cap closed' });
      await sleep(300);
      assert.equal(socks.filter((s) => !s.ended).length, 20, 'handshakes left open from one address');
      const st = await stats(node);
      assert.equal(st.limits.addr_refused, 30);
      assert.equal(st.limits.handshakes, 20);
      // Another address, and an upgraded socket from the capped address.
      assert.equal((await httpGet(`${node.http}/healthz`)).status, 200);
      for (const s of socks) s.destroy();
      await waitFor(async () => (await stats(node)).limits.handshakes === 0, { what: 'handshakes released' });
      const c = await wsHandshake(node, { user: 'after' });
      c.sock.destroy();
    } finally { await stopCleanNow(node, assert); }
  });

  it('--max-handshakes evicts the oldest stalled handshakes, not ones younger than a second (a reconnect storm) below 4x the cap', async () => {
    const node = await startNode({ args: ['--max-handshakes', '10'] });
    try {
      // A storm: 30 handshakes at once, all young. None is cut.
      const storm = await Promise.all(Array.from({ length: 30 }, () => halfOpen(node)));
      await sleep(300);
      assert.equal(storm.filter((s) => s.ended).length, 0, 'young handshakes evicted');
      assert.equal((await stats(node)).limits.handshakes, 30);
      // A second on, they are stalled: the next newcomer brings the
      // handshakes back under the cap, the oldest going first.
      await sleep(1000);
      assert.equal((await stats(node)).limits.handshakes_stale, 30);
      const late = [];
      for (let i = 0; i < 5; i++) late.push(await halfOpen(node));
      await waitFor(() => storm.filter((s) => s.ended).length >= 25, { timeout: 3000, what: 'the oldest evicted' });
      await sleep(200);
      assert.equal(storm.filter((s) => s.ended).length, 25, 'stalled storm handshakes evicted');
      assert.equal(late.filter((s) => s.ended).length, 0, 'newer handshakes evicted');
      const st = await stats(node);
      assert.equal(st.limits.handshakes_evicted, 25);
      assert.equal(st.limits.handshakes, 10);
      assert.equal(st.limits.handshakes_max, 10);
      // An honest client still gets in at once.
      const ws = await rawOpen(node, { user: 'honest' });
      await rawHeartbeat(ws);
      ws.close();
      for (const x of [...storm, ...late]) x.destroy();
      await waitFor(async () => (await stats(node)).limits.handshakes === 0, { what: 'handshakes released' });
      // Young or not, a flood is cut at four times the cap.
      const flood = await Promise.all(Array.from({ length: 50 }, () => halfOpen(node)));
      await waitFor(() => flood.filter((s) => s.ended).length >= 10, { timeout: 3000, what: 'the flood cut' });
      await sleep(200);
      assert.equal(flood.filter((s) => !s.ended).length, 40);
      assert.equal((await stats(node)).limits.handshakes, 40);
      for (const x of flood) x.destroy();
    } finally { await stopCleanNow(node, assert); }
  });

  it('when every slot holds an upgraded socket, /healthz and /readyz still answer; another upgrade gets 503', async () => {
    const node = await startNode({ args: ['--max-connections', '20'] });
    const socks = [];
    try {
      for (let i = 0; i < 20; i++) socks.push(await rawOpen(node, { user: `full${i}` }));
      assert.equal((await stats(node)).sockets.websocket, 20);
      for (let i = 0; i < 3; i++) {
        assert.equal((await httpGet(`${node.http}/healthz`)).status, 200);
        assert.equal((await httpGet(`${node.http}/readyz`)).status, 200);
      }
      const r = await httpRaw(node, `GET /socket/websocket?vsn=2.0.0&token=${token('late')} HTTP/1.1\r\nHost: x\r\n` +
        'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      assert.equal(r.status, 503, r.statusLine);
      assert.match(r.body, /every socket slot/);
      // The sockets that hold the slots were not disturbed.
      await rawHeartbeat(socks[0]);
      await rawHeartbeat(socks[19]);
      // A freed slot is usable again.
      socks.pop().close();
      await waitFor(async () => (await stats(node)).sockets.open === 19, { what: 'a slot freed' });
      socks.push(await rawOpen(node, { user: 'late' }));
    } finally {
      for (const s of socks) s.close();
      await stopCleanNow(node, assert);
    }
  });
});

describe('sockets per user', () => {
  it('--max-sockets-per-user refuses the next upgrade with 429 and a reason; other users are unaffected', async () => {
    const node = await startNode({ args: ['--max-sockets-per-user', '3'] });
    const held = [];
    try {
      for (let i = 0; i < 3; i++) held.push(await rawOpen(node, { user: 'greedy' }));
      const q = `vsn=2.0.0&token=${token('greedy')}`;
      const r = await httpRaw(node, `GET /socket/websocket?${q} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n` +
        'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      assert.equal(r.status, 429, r.statusLine);
      assert.match(r.body, /--max-sockets-per-user 3/);
      // The phoenix client sees a refused connection, as for any refusal.
      const refused = raw(node, { user: 'greedy' });
      refused.on('error', () => {});
      await assert.rejects(refused.opened, (e) => e.status === 429);
      const other = await rawOpen(node, { user: 'modest' });
      await rawHeartbeat(other);
      other.close();
      assert.equal((await stats(node)).limits.user_refused, 2);
      // Closing one frees its place.
      held.pop().close();
      await waitFor(async () => (await stats(node)).sockets.websocket === 2, { what: 'a socket of greedy closed' });
      held.push(await rawOpen(node, { user: 'greedy' }));
      for (const s of held) await rawHeartbeat(s);
    } finally {
      for (const s of held) s.close();
      await stopCleanNow(node, assert);
    }
  });
});

describe('node output budget', () => {
  it('stalled subscribers under a broadcast flood: queued bytes stay within --max-queued-bytes, the stalled are closed, readers get everything', { timeout: 180000 }, async (t) => {
    const BUDGET = 4 << 20;
    const node = await startNode({
      args: ['--max-queued-bytes', String(BUDGET), '--max-out-bytes', String(1 << 30),
        '--max-comment-bytes', '10000', '--rate-limit', '1000000/60'],
      // No quarantine: freed memory is measured as freed.
      env: { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS || ''}:quarantine_size_mb=0:thread_local_quarantine_size_kb=0` },
    });
    const topic = `comments:${uniq('flood')}`;
    const stalled = [];
    const readers = [];
    try {
      for (let i = 0; i < 30; i++) {
        const c = await wsHandshake(node, { user: `stalled${i}` });
        c.text(['1', '1', topic, 'phx_join', {}]);
        await c.next((f) => f.opcode === 1 && JSON.parse(f.payload)[1] === '1');
        c.sock.pause(); // never reads again
        stalled.push(c);
      }
      for (let i = 0; i < 3; i++) {
        const sock = socket(node, `reader${i}`);
        await connected(sock);
        const ch = sock.channel(topic);
        const r = { sock, got: 0 };
        ch.on('new_comment', () => { r.got++; });
        await join(ch);
        readers.push(r);
      }
      const poster = socket(node, 'poster');
      await connected(poster);
      const pch = poster.channel(topic);
      await join(pch);
      const baseRss = rssKiB(node.proc.pid);
      let maxQueued = 0, maxRss = baseRss, sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const st = await stats(node);
          maxQueued = Math.max(maxQueued, st.limits.queued_bytes);
          maxRss = Math.max(maxRss, rssKiB(node.proc.pid));
          await sleep(50);
        }
      })();
      const N = 6000;
      const body = 'q'.repeat(8000);
      const t0 = Date.now();
      await postMany(pch, N, { inFlight: 20, content: (i) => `${i} ${body}` });
      t.diagnostic(`${N} comments posted in ${Date.now() - t0} ms`);
      await waitFor(() => readers.every((r) => r.got === N), { timeout: 30000, what: `readers got ${readers.map((r) => r.got)} of ${N}` });
      sampling = false;
      await sampler;
      const st = await stats(node);
      t.diagnostic(`queued bytes peaked at ${maxQueued} (budget ${BUDGET}); anonymous RSS ${baseRss} -> ${maxRss} KiB; ` +
        `${st.limits.budget_closed} sockets closed for the budget`);
      assert.ok(maxQueued <= BUDGET, `queued ${maxQueued} bytes over the budget ${BUDGET}`);
      assert.ok(st.limits.budget_closed >= 1, 'no stalled subscriber was closed');
      assert.equal(st.sockets.slow_closed, 0, 'the per-socket cap must not be what closed them');
      // The budget plus a fixed allowance (allocator and sanitizer
      // overhead), far below the 48 MB the stalled subscribers fell behind.
      assert.ok((maxRss - baseRss) * 1024 < BUDGET + (16 << 20), `anonymous RSS grew by ${maxRss - baseRss} KiB`);
      // Every stalled subscriber was closed: once it reads again, its
      // connection ends before the whole stream.
      for (const c of stalled) c.sock.resume();
      await waitFor(() => stalled.every((c) => c.ended), { timeout: 20000, what: `stalled sockets ended (${stalled.filter((c) => c.ended).length})` });
      for (const c of stalled) assert.ok(c.bytes < N * body.length, `a stalled client received ${c.bytes} bytes`);
      // The readers are still connected and served.
      const r = await push(pch, 'new_comment', { content: 'after the flood' });
      assert.equal(r.status, 'ok');
      await waitFor(() => readers.every((x) => x.got === N + 1), { what: 'readers get the next comment' });
      poster.disconnect();
    } finally {
      for (const c of stalled) c.sock.destroy();
      for (const r of readers) r.sock.disconnect();
      await stopCleanNow(node, assert);
    }
  });
});
