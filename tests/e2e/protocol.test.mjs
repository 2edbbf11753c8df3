// SPDX-License-Identifier: Apache-2.0
// Phoenix Channels protocol against a real node: the official phoenix client
// for what browsers do, raw WebSockets for the exact frames (phoenix.md
// sections 1, 2 and 8; design.md "Client protocol").
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startNode, stopCleanNow, socket, socketV1, join, push, connected, ping, rawOpen,
  rawHeartbeat, rawJoin, sleep, waitFor,
} from './lib.mjs';

let node;
before(async () => {
  node = await startNode({ args: ['--rate-limit', '100000/60'] });
});
after(async () => { await stopCleanNow(node, assert); });

const uniq = (p) => `${p}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;

// Collects every frame a raw socket receives, in arrival order (ws.next
// removes what it matched from ws.msgs, so ordering checks need this log).
function record(ws) {
  const log = [];
  ws.on('message', (d, isBinary) => log.push(isBinary ? d : JSON.parse(d.toString())));
  return log;
}

// Proves nothing arrives for `ms` matching pred.
async function nothing(ws, pred, ms = 400) {
  await sleep(ms);
  const hit = ws.msgs.find(pred);
  assert.equal(hit, undefined, `unexpected frame ${JSON.stringify(hit)}`);
}

describe('phoenix client', () => {
  it('connects with vsn 2.0.0, heartbeats and joins comments', async () => {
    const sock = socket(node, 'alice');
    try {
      await connected(sock);
      const ms = await ping(sock);
      assert.ok(ms < 2000, `heartbeat latency ${ms} ms`);
      const ch = sock.channel(`comments:${uniq('v2')}`);
      const reply = await join(ch);
      assert.deepEqual(reply, { comments: [], has_more: false });
    } finally { sock.disconnect(); }
  });

  it('connects with vsn 1.0.0 (JSON objects), heartbeats and joins comments', async () => {
    const sock = socketV1(node, 'bob');
    try {
      await connected(sock);
      await ping(sock);
      const ch = sock.channel(`comments:${uniq('v1')}`);
      const reply = await join(ch);
      assert.deepEqual(reply, { comments: [], has_more: false });
      const r = await push(ch, 'new_comment', { content: 'hello over V1' });
      assert.equal(r.status, 'ok');
      assert.equal(typeof r.response.id, 'string');
    } finally { sock.disconnect(); }
  });

  it('join of an unknown topic replies error "unmatched topic"', async () => {
    const sock = socket(node, 'carol');
    try {
      await connected(sock);
      const ch = sock.channel('nosuchthing:1');
      await assert.rejects(join(ch), (e) => {
        assert.deepEqual(e.reply, { reason: 'unmatched topic' });
        return true;
      });
      ch.leave();
      await ping(sock); // the socket stays open
    } finally { sock.disconnect(); }
  });

  it('leave replies ok and the channel closes', async () => {
    const sock = socket(node, 'dave');
    try {
      await connected(sock);
      const ch = sock.channel(`comments:${uniq('leave')}`);
      await join(ch);
      const closed = new Promise((r) => ch.onClose(r));
      const ok = await new Promise((resolve, reject) => {
        ch.leave(3000).receive('ok', () => resolve(true)).receive('timeout', () => reject(new Error('leave timeout')));
      });
      assert.equal(ok, true);
      await closed;
      assert.equal(ch.state, 'closed');
    } finally { sock.disconnect(); }
  });

  it('a broadcast reaches V1 and V2 subscribers with identical content', async () => {
    const topic = `comments:${uniq('bc')}`;
    const a = socket(node, 'sender');
    const b = socketV1(node, 'viewer1');
    const c = socket(node, 'viewer2');
    try {
      await Promise.all([connected(a), connected(b), connected(c)]);
      const [ca, cb, cc] = [a.channel(topic), b.channel(topic), c.channel(topic)];
      await Promise.all([join(ca), join(cb), join(cc)]);
      const got = (ch) => new Promise((r) => ch.on('new_comment', r));
      const [ga, gb, gc] = [got(ca), got(cb), got(cc)];
      const r = await push(ca, 'new_comment', { content: 'héllo wörld ✓' });
      assert.equal(r.status, 'ok', JSON.stringify(r));
      const [pa, pb, pc] = await Promise.all([ga, gb, gc]);
      assert.deepEqual(pb, pa);
      assert.deepEqual(pc, pa);
      assert.equal(pa.id, r.response.id);
      assert.equal(pa.content, 'héllo wörld ✓');
      assert.equal(pa.user_id, 'sender');
      assert.equal(typeof pa.inserted_at, 'number');
    } finally { a.disconnect(); b.disconnect(); c.disconnect(); }
  });
});

describe('authToken (subprotocol) authentication', () => {
  it('the phoenix client\'s authToken option authenticates without a token param', async () => {
    const { Socket, WebSocket, token: mint } = await import('./lib.mjs');
    const sock = new Socket(node.url, { transport: WebSocket, authToken: mint('carol') });
    sock.connect();
    try {
      await connected(sock);
      const ch = sock.channel(`presence:carol`, { device_id: 'd1' });
      await join(ch);
    } finally { sock.disconnect(); }
  });
  it('a token in both the query and authToken: the 101 echoes the subprotocol; two different tokens are refused', async () => {
    const { Socket, WebSocket, token: mint } = await import('./lib.mjs');
    const tok = mint('dora');
    // The phoenix client with both: ws aborts a 101 that drops the subprotocol.
    const sock = new Socket(node.url, { transport: WebSocket, authToken: tok, params: { token: tok } });
    sock.connect();
    try {
      await connected(sock);
      await join(sock.channel('presence:dora', { device_id: 'd1' }));
    } finally { sock.disconnect(); }
    const bearer = (t) => `base64url.bearer.phx.${Buffer.from(t).toString('base64url')}`;
    const same = new WebSocket(`${node.url}/websocket?vsn=2.0.0&token=${tok}`, ['phoenix', bearer(tok)]);
    await new Promise((resolve, reject) => { same.on('open', resolve); same.on('error', reject); });
    assert.equal(same.protocol, 'phoenix');
    same.close();
    // Only "phoenix" offered, token in the query: still echoed.
    const plain = new WebSocket(`${node.url}/websocket?vsn=2.0.0&token=${tok}`, ['phoenix']);
    await new Promise((resolve, reject) => { plain.on('open', resolve); plain.on('error', reject); });
    assert.equal(plain.protocol, 'phoenix');
    plain.close();
    const two = new WebSocket(`${node.url}/websocket?vsn=2.0.0&token=${mint('eve')}`, ['phoenix', bearer(tok)]);
    const status = await new Promise((resolve) => {
      two.on('unexpected-response', (req, res) => resolve(res.statusCode));
      two.on('open', () => resolve('open'));
      two.on('error', () => {});
    });
    two.terminate();
    assert.equal(status, 403);
  });
  it('a bad authToken is refused like a bad token param', async () => {
    const { Socket, WebSocket } = await import('./lib.mjs');
    const sock = new Socket(node.url, { transport: WebSocket, authToken: 'not.a.jwt', reconnectAfterMs: () => 60000 });
    let errored = false;
    sock.onError(() => { errored = true; });
    sock.connect();
    try {
      await waitFor(() => errored, { what: 'connection error' });
      assert.equal(sock.isConnected(), false);
    } finally { sock.disconnect(); }
  });
});

describe('raw V2 frames', () => {
  it('heartbeat reply has the exact Phoenix shape; other phoenix events are unmatched', async () => {
    const ws = await rawOpen(node);
    try {
      ws.sendJson([null, '9', 'phoenix', 'heartbeat', {}]);
      assert.deepEqual(await ws.next((m) => m[1] === '9'),
        [null, '9', 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
      ws.sendJson([null, '10', 'phoenix', 'bogus', {}]);
      assert.deepEqual(await ws.next((m) => m[1] === '10'),
        [null, '10', 'phoenix', 'phx_reply', { status: 'error', response: { reason: 'unmatched topic' } }]);
    } finally { ws.close(); }
  });

  it('join reply, leave reply then phx_close, in that order', async () => {
    const ws = await rawOpen(node);
    const log = record(ws);
    const topic = `comments:${uniq('rl')}`;
    try {
      ws.sendJson(['1', '1', topic, 'phx_join', {}]);
      assert.deepEqual(await ws.next((m) => m[1] === '1'),
        ['1', '1', topic, 'phx_reply', { status: 'ok', response: { comments: [], has_more: false } }]);
      ws.sendJson(['1', '2', topic, 'phx_leave', {}]);
      assert.deepEqual(await ws.next((m) => m[1] === '2'),
        ['1', '2', topic, 'phx_reply', { status: 'ok', response: {} }]);
      assert.deepEqual(await ws.next((m) => m[3] === 'phx_close'), ['1', '1', topic, 'phx_close', {}]);
      const iReply = log.findIndex((m) => m[1] === '2');
      const iClose = log.findIndex((m) => m[3] === 'phx_close');
      assert.ok(iReply < iClose, `leave reply must precede phx_close: ${JSON.stringify(log)}`);
      // After leaving, a push is unmatched, and leaving again replies ok.
      ws.sendJson(['1', '3', topic, 'new_comment', { content: 'x' }]);
      assert.deepEqual(await ws.next((m) => m[1] === '3'),
        [null, '3', topic, 'phx_reply', { status: 'error', response: { reason: 'unmatched topic' } }]);
      ws.sendJson(['1', '4', topic, 'phx_leave', {}]);
      const again = await ws.next((m) => m[1] === '4');
      assert.deepEqual(again.slice(1), ['4', topic, 'phx_reply', { status: 'ok', response: {} }]);
    } finally { ws.close(); }
  });

  it('push to a topic not joined replies error "unmatched topic" with join_ref null', async () => {
    const ws = await rawOpen(node);
    try {
      ws.sendJson(['5', '6', 'comments:never-joined', 'new_comment', { content: 'x' }]);
      assert.deepEqual(await ws.next((m) => m[1] === '6'),
        [null, '6', 'comments:never-joined', 'phx_reply', { status: 'error', response: { reason: 'unmatched topic' } }]);
      ws.sendJson(['7', '7', 'rooms:lobby', 'phx_join', {}]);
      assert.deepEqual(await ws.next((m) => m[1] === '7'),
        [null, '7', 'rooms:lobby', 'phx_reply', { status: 'error', response: { reason: 'unmatched topic' } }]);
      await rawHeartbeat(ws);
    } finally { ws.close(); }
  });

  it('duplicate join: new reply first, then phx_close with the old join_ref; topic usable under the new join', async () => {
    const ws = await rawOpen(node);
    const log = record(ws);
    const topic = `comments:${uniq('dup')}`;
    try {
      ws.sendJson(['1', '1', topic, 'phx_join', {}]);
      assert.equal((await ws.next((m) => m[1] === '1'))[4].status, 'ok');
      ws.sendJson(['2', '2', topic, 'phx_join', {}]);
      const reply = await ws.next((m) => m[1] === '2' && m[3] === 'phx_reply');
      assert.deepEqual(reply.slice(0, 4), ['2', '2', topic, 'phx_reply']);
      assert.equal(reply[4].status, 'ok');
      assert.deepEqual(await ws.next((m) => m[3] === 'phx_close'), ['1', '1', topic, 'phx_close', {}]);
      const iReply = log.findIndex((m) => m[1] === '2' && m[3] === 'phx_reply');
      const iClose = log.findIndex((m) => m[3] === 'phx_close');
      assert.ok(iReply < iClose, `order: ${JSON.stringify(log.map((m) => m.slice(0, 4)))}`);
      ws.sendJson(['2', '3', topic, 'new_comment', { content: 'under new join' }]);
      const r = await ws.next((m) => m[1] === '3');
      assert.deepEqual(r.slice(0, 4), ['2', '3', topic, 'phx_reply']);
      assert.equal(r[4].status, 'ok', JSON.stringify(r));
      const bc = await ws.next((m) => m[3] === 'new_comment');
      assert.deepEqual(bc.slice(0, 3), [null, null, topic]);
      // The old join_ref is now stale: dropped without a reply.
      ws.sendJson(['1', '4', topic, 'new_comment', { content: 'stale' }]);
      await nothing(ws, (m) => m[1] === '4');
    } finally { ws.close(); }
  });

  it('a message with a stale join_ref is dropped silently (leave included)', async () => {
    const ws = await rawOpen(node);
    const topic = `comments:${uniq('stale')}`;
    try {
      ws.sendJson(['1', '1', topic, 'phx_join', {}]);
      assert.equal((await ws.next((m) => m[1] === '1'))[4].status, 'ok');
      ws.sendJson(['99', '2', topic, 'new_comment', { content: 'stale push' }]);
      ws.sendJson(['99', '3', topic, 'phx_leave', {}]);
      ws.sendJson(['99', '4', topic, 'list_comments', {}]);
      await nothing(ws, (m) => ['2', '3', '4'].includes(m[1]) || m[3] === 'new_comment' || m[3] === 'phx_close');
      // Still joined under join_ref 1, and the socket works.
      await rawHeartbeat(ws);
      ws.sendJson(['1', '5', topic, 'list_comments', {}]);
      const r = await ws.next((m) => m[1] === '5');
      assert.deepEqual(r, ['1', '5', topic, 'phx_reply', { status: 'ok', response: { comments: [], has_more: false } }]);
    } finally { ws.close(); }
  });

  it('a join with join_ref null: later pushes and replies carry the join\'s ref', async () => {
    const ws = await rawOpen(node);
    const topic = `comments:${uniq('nulljr')}`;
    try {
      ws.sendJson([null, '5', topic, 'phx_join', {}]);
      const jr = await ws.next((m) => m[1] === '5');
      // Phoenix echoes null on the join reply itself; '5' is also harmless.
      assert.ok(jr[0] === null || jr[0] === '5', `join reply join_ref ${JSON.stringify(jr[0])}`);
      assert.deepEqual(jr.slice(1), ['5', topic, 'phx_reply', { status: 'ok', response: { comments: [], has_more: false } }]);
      // Channel pushes (presence_state) carry the join's ref.
      const ps = await ws.next((m) => m[3] === 'presence_state');
      assert.deepEqual(ps.slice(0, 3), ['5', null, topic]);
      ws.sendJson([null, '6', topic, 'new_comment', { content: 'null join ref' }]);
      const r = await ws.next((m) => m[1] === '6');
      assert.deepEqual(r.slice(0, 4), ['5', '6', topic, 'phx_reply']);
      assert.equal(r[4].status, 'ok', JSON.stringify(r));
      ws.sendJson(['5', '7', topic, 'list_comments', {}]);
      const l = await ws.next((m) => m[1] === '7');
      assert.deepEqual(l.slice(0, 4), ['5', '7', topic, 'phx_reply']);
    } finally { ws.close(); }
  });

  it('refs are echoed with their original JSON type', async () => {
    const ws = await rawOpen(node);
    const topic = `comments:${uniq('types')}`;
    try {
      ws.sendJson([null, 42, 'phoenix', 'heartbeat', {}]);
      assert.deepEqual(await ws.next((m) => m[1] === 42),
        [null, 42, 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
      ws.sendJson([7, 7, topic, 'phx_join', {}]);
      const j = await ws.next((m) => m[1] === 7);
      assert.deepEqual(j.slice(0, 4), [7, 7, topic, 'phx_reply']);
      assert.equal(j[4].status, 'ok');
      ws.sendJson([7, 8, topic, 'list_comments', {}]);
      const l = await ws.next((m) => m[1] === 8);
      assert.deepEqual(l.slice(0, 4), [7, 8, topic, 'phx_reply']);
      // A string "7" is not the number 7: stale, dropped.
      ws.sendJson(['7', '9', topic, 'list_comments', {}]);
      await nothing(ws, (m) => m[1] === '9');
      ws.sendJson([7, 10, topic, 'phx_leave', {}]);
      assert.deepEqual(await ws.next((m) => m[1] === 10), [7, 10, topic, 'phx_reply', { status: 'ok', response: {} }]);
      assert.deepEqual(await ws.next((m) => m[3] === 'phx_close'), [7, 7, topic, 'phx_close', {}]);
    } finally { ws.close(); }
  });

  it('join payload that is not an object replies error invalid_params, socket stays open', async () => {
    const ws = await rawOpen(node);
    try {
      const cases = ['str', 5, null, [], true];
      for (const [i, p] of cases.entries()) {
        const t = `comments:${uniq('badjp')}`;
        ws.sendJson([`j${i}`, `j${i}`, t, 'phx_join', p]);
        const r = await ws.next((m) => m[1] === `j${i}`);
        assert.deepEqual(r.slice(1), [`j${i}`, t, 'phx_reply', { status: 'error', response: { reason: 'invalid_params' } }],
          `payload ${JSON.stringify(p)}`);
      }
      await rawHeartbeat(ws);
    } finally { ws.close(); }
  });

  it('an unknown event on a joined channel replies error unknown_event', async () => {
    const ws = await rawOpen(node);
    const topic = `comments:${uniq('unk')}`;
    try {
      ws.sendJson(['1', '1', topic, 'phx_join', {}]);
      await ws.next((m) => m[1] === '1');
      ws.sendJson(['1', '2', topic, 'frobnicate', { a: 1 }]);
      assert.deepEqual(await ws.next((m) => m[1] === '2'),
        ['1', '2', topic, 'phx_reply', { status: 'error', response: { reason: 'unknown_event' } }]);
      await rawHeartbeat(ws);
    } finally { ws.close(); }
  });

  it('the 101st channel on one socket is refused with "too many channels joined"', async () => {
    const ws = await rawOpen(node, { user: 'many' });
    const base = uniq('many');
    try {
      for (let i = 0; i < 100; i++) ws.sendJson([`j${i}`, `j${i}`, `comments:${base}-${i}`, 'phx_join', {}]);
      for (let i = 0; i < 100; i++) {
        const r = await ws.next((m) => m[1] === `j${i}` && m[3] === 'phx_reply');
        assert.equal(r[4].status, 'ok', `join ${i}: ${JSON.stringify(r)}`);
      }
      ws.sendJson(['j100', 'j100', `comments:${base}-100`, 'phx_join', {}]);
      const r = await ws.next((m) => m[1] === 'j100');
      assert.deepEqual(r.slice(1), ['j100', `comments:${base}-100`, 'phx_reply',
        { status: 'error', response: { reason: 'too many channels joined' } }]);
      // A rejoin of a topic already joined is not a new channel.
      ws.sendJson(['k0', 'k0', `comments:${base}-0`, 'phx_join', {}]);
      assert.equal((await ws.next((m) => m[1] === 'k0'))[4].status, 'ok');
      // Leaving one frees a slot.
      ws.sendJson(['j1', 'l1', `comments:${base}-1`, 'phx_leave', {}]);
      assert.equal((await ws.next((m) => m[1] === 'l1'))[4].status, 'ok');
      ws.sendJson(['j101', 'j101', `comments:${base}-101`, 'phx_join', {}]);
      assert.equal((await ws.next((m) => m[1] === 'j101'))[4].status, 'ok');
      await rawHeartbeat(ws);
    } finally { ws.close(); }
  });

  it('a binary V2 push frame (kind 0) gets an error reply, not a crash', async () => {
    const ws = await rawOpen(node);
    const topic = `comments:${uniq('bin')}`;
    const binPush = (jr, ref, t, ev, data) => {
      const parts = [jr, ref, t, ev].map((s) => Buffer.from(s));
      return Buffer.concat([Buffer.from([0, ...parts.map((p) => p.length)]), ...parts, Buffer.from(data)]);
    };
    try {
      ws.sendJson(['1', '1', topic, 'phx_join', {}]);
      await ws.next((m) => m[1] === '1');
      ws.send(binPush('1', '2', topic, 'new_comment', [1, 2, 3, 255]), { binary: true });
      const r = await ws.next((m) => (Array.isArray(m) && m[1] === '2') || Buffer.isBuffer(m));
      if (Buffer.isBuffer(r)) {
        // kind 1 reply: 1, len(jr), len(ref), len(topic), len(status), ...
        assert.equal(r[0], 1, `binary reply kind ${r[0]}`);
        const [ljr, lref, ltop, lst] = [r[1], r[2], r[3], r[4]];
        const s = r.subarray(5).toString('latin1');
        assert.equal(s.slice(ljr + lref + ltop, ljr + lref + ltop + lst), 'error');
      } else {
        assert.deepEqual(r.slice(0, 4), ['1', '2', topic, 'phx_reply']);
        assert.equal(r[4].status, 'error');
        assert.equal(typeof r[4].response.reason, 'string');
      }
      // Unjoined topic: unmatched topic.
      ws.send(binPush('', '3', 'comments:nope-bin', 'new_comment', 'xyz'), { binary: true });
      const u = await ws.next((m) => Array.isArray(m) && m[1] === '3');
      assert.deepEqual(u.slice(1), ['3', 'comments:nope-bin', 'phx_reply', { status: 'error', response: { reason: 'unmatched topic' } }]);
      await rawHeartbeat(ws);
    } finally { ws.close(); }
  });

  it('broadcasts carry [null, null, topic, event, payload] and the sender gets them too', async () => {
    const topic = `comments:${uniq('rbc')}`;
    const a = await rawOpen(node, { user: 'ra' });
    const b = await rawOpen(node, { user: 'rb' });
    try {
      await rawJoin(a, topic);
      await rawJoin(b, topic);
      a.sendJson([null, 'p1', topic, 'new_comment', { content: 'raw broadcast' }]);
      const reply = await a.next((m) => m[1] === 'p1');
      assert.equal(reply[4].status, 'ok', JSON.stringify(reply));
      const ba = await a.next((m) => m[3] === 'new_comment');
      const bb = await b.next((m) => m[3] === 'new_comment');
      assert.deepEqual(bb, ba);
      assert.deepEqual(ba.slice(0, 4), [null, null, topic, 'new_comment']);
      assert.equal(ba[4].id, reply[4].response.id);
      assert.equal(ba[4].user_id, 'ra');
    } finally { a.close(); b.close(); }
  });
});

describe('raw V1 frames', () => {
  it('V1 replies and broadcasts have no join_ref; broadcasts carry ref null; same payload as V2', async () => {
    const topic = `comments:${uniq('rv1')}`;
    const v1 = await rawOpen(node, { vsn: '1.0.0', user: 'v1user' });
    const v2 = await rawOpen(node, { user: 'v2user' });
    try {
      // An old V1 client sends no join_ref at all.
      v1.sendJson({ topic, event: 'phx_join', payload: {}, ref: '1' });
      const j = await v1.next((m) => m.ref === '1');
      assert.deepEqual(j, { topic, event: 'phx_reply', payload: { status: 'ok', response: { comments: [], has_more: false } }, ref: '1' });
      await rawJoin(v2, topic);
      v1.sendJson({ topic: 'phoenix', event: 'heartbeat', payload: {}, ref: 'hb' });
      assert.deepEqual(await v1.next((m) => m.ref === 'hb'),
        { topic: 'phoenix', event: 'phx_reply', payload: { status: 'ok', response: {} }, ref: 'hb' });
      v1.sendJson({ topic, event: 'new_comment', payload: { content: 'from v1' }, ref: '2', join_ref: '1' });
      const r = await v1.next((m) => m.ref === '2');
      assert.equal(r.payload.status, 'ok', JSON.stringify(r));
      assert.deepEqual(Object.keys(r).sort(), ['event', 'payload', 'ref', 'topic']);
      const b1 = await v1.next((m) => m.event === 'new_comment');
      assert.deepEqual(Object.keys(b1).sort(), ['event', 'payload', 'ref', 'topic']);
      assert.equal(b1.ref, null);
      assert.equal(b1.topic, topic);
      const b2 = await v2.next((m) => m[3] === 'new_comment');
      assert.deepEqual(b2.slice(0, 3), [null, null, topic]);
      assert.deepEqual(b1.payload, b2[4]);
      assert.equal(b1.payload.id, r.payload.response.id);
      // Presence pushes to V1 also lack join_ref.
      const ps = await v1.next((m) => m.event === 'presence_state');
      assert.ok(!('join_ref' in ps), JSON.stringify(ps));
      // Unknown topic on V1.
      v1.sendJson({ topic: 'zzz:1', event: 'phx_join', payload: {}, ref: '3' });
      assert.deepEqual(await v1.next((m) => m.ref === '3'),
        { topic: 'zzz:1', event: 'phx_reply', payload: { status: 'error', response: { reason: 'unmatched topic' } }, ref: '3' });
    } finally { v1.close(); v2.close(); }
  });
});

describe('connection lifecycle', () => {
  it('the phoenix client rejoins after its socket is dropped by the client side', async () => {
    const sock = socket(node, 'erin');
    try {
      await connected(sock);
      const topic = `comments:${uniq('rej')}`;
      const ch = sock.channel(topic);
      await join(ch);
      // Drop the transport under the client's feet; it reconnects (200 ms) and rejoins.
      sock.conn.terminate?.() ?? sock.conn.close(4000);
      await waitFor(() => sock.isConnected() && ch.state === 'joined' && ch.joinPush.ref !== null, { what: 'rejoin' });
      const r = await push(ch, 'new_comment', { content: 'after reconnect' });
      assert.equal(r.status, 'ok', JSON.stringify(r));
    } finally { sock.disconnect(); }
  });
});
