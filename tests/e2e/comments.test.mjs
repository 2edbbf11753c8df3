// SPDX-License-Identifier: Apache-2.0
// The comments channel against real nodes with the official phoenix client
// (design.md "comments:<video_id>", docs/protocol.md): live delivery, every
// error reason, history paging, recovery after a reconnect, durability
// across a restart, ordering and isolation of ids and videos.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import {
  startNode, socket, join, push, sleep, waitFor, rawOpen, rawJoin, rawHeartbeat,
} from './lib.mjs';
import { uniq, postMany, strictlyIncreasing, stopCleanFast as stopClean } from './comments_lib.mjs';

// Events of `event` a channel receives, in order.
function collect(ch, event = 'new_comment') {
  const got = [];
  ch.on(event, (p) => got.push(p));
  return got;
}

describe('comments on a default node', () => {
  let node;
  const socks = [];
  const open = (user, opts) => { const s = socket(node, user, opts); socks.push(s); return s; };
  before(async () => { node = await startNode(); });
  after(async () => {
    for (const s of socks) s.disconnect();
    await stopClean(node, assert);
  });

  it('join of an empty video replies {comments: [], has_more: false}', async () => {
    const ch = open('u-empty').channel(`comments:${uniq('empty')}`);
    assert.deepEqual(await join(ch), { comments: [], has_more: false });
  });

  it('new_comment is acked with its id and reaches the sender and another subscriber', async () => {
    const video = uniq('live');
    const a = open('alice').channel(`comments:${video}`);
    const b = open('bob').channel(`comments:${video}`);
    const gotA = collect(a), gotB = collect(b);
    await join(a); await join(b);
    const t0 = Date.now();
    const r = await push(a, 'new_comment', { content: 'hello, world ✓' });
    assert.equal(r.status, 'ok', JSON.stringify(r));
    assert.deepEqual(Object.keys(r.response), ['id']);
    assert.equal(typeof r.response.id, 'string');
    assert.equal(r.response.id.length, 24, `id ${r.response.id}`);
    await waitFor(() => gotA.length >= 1 && gotB.length >= 1, { what: 'new_comment on both' });
    for (const got of [gotA, gotB]) {
      assert.equal(got.length, 1);
      const c = got[0];
      assert.deepEqual(Object.keys(c).sort(), ['content', 'id', 'inserted_at', 'user_id', 'video_id']);
      assert.equal(c.id, r.response.id);
      assert.equal(c.video_id, video);
      assert.equal(c.user_id, 'alice');
      assert.equal(c.content, 'hello, world ✓');
      assert.ok(Number.isInteger(c.inserted_at));
      assert.ok(Math.abs(c.inserted_at - t0) < 5000, `inserted_at ${c.inserted_at} vs now ${t0} (unix ms)`);
    }
    // The history shows it as well.
    const h = await push(b, 'list_comments', {});
    assert.equal(h.status, 'ok');
    assert.deepEqual(h.response, { comments: [gotB[0]], has_more: false });
  });

  it('invalid_content: missing, not a string, empty, white space only', async () => {
    const video = uniq('bad');
    const ch = open('badposter').channel(`comments:${video}`);
    const watch = open('badwatcher').channel(`comments:${video}`);
    const seen = collect(watch);
    await join(ch); await join(watch);
    for (const payload of [{}, { text: 'x' }, { content: 42 }, { content: null }, { content: ['x'] },
      { content: '' }, { content: '   ' }, { content: ' \t\r\n ' }]) {
      const r = await push(ch, 'new_comment', payload);
      assert.deepEqual(r, { status: 'error', response: { reason: 'invalid_content' } }, JSON.stringify(payload));
    }
    const ok = await push(ch, 'new_comment', { content: '  padded  ' });
    assert.equal(ok.status, 'ok');
    await waitFor(() => seen.length === 1, { what: 'the one valid comment' });
    assert.equal(seen[0].content, '  padded  ');
    const h = await push(watch, 'list_comments', {});
    assert.equal(h.response.comments.length, 1, 'refused comments must not be stored');
  });

  it('invalid_content for a comment containing NUL (JSON "\\u0000"), socket kept open', async () => {
    // Valid JSON (RFC 8259 allows the \u0000 escape); docs/protocol.md lists
    // "containing NUL" under invalid_content. A raw socket shows the frames.
    const topic = `comments:${uniq('nul')}`;
    const ws = await rawOpen(node, { user: 'nulposter' });
    try {
      const j = await rawJoin(ws, topic);
      assert.equal(j[4].status, 'ok');
      ws.send(`["${j[0]}","nul1","${topic}","new_comment",{"content":"a\\u0000b"}]`);
      let reply;
      try {
        reply = await ws.next((m) => m[1] === 'nul1', 2000);
      } catch (e) {
        assert.fail(`no reply; socket closed: ${JSON.stringify(ws.closeInfo)} (${e.message.slice(0, 80)})`);
      }
      assert.deepEqual(reply[4], { status: 'error', response: { reason: 'invalid_content' } });
      await rawHeartbeat(ws);
    } finally { ws.close(); }
  });

  it('rate_limit_exceeded on the 31st comment of a window (30/60), other users unaffected', async () => {
    // Windows are fixed on unix minutes (Hammer): stay clear of a boundary.
    const inMinute = Date.now() % 60000;
    if (inMinute > 57000) await sleep(60000 - inMinute + 100);
    const user = uniq('spammer');
    const ch = open(user).channel(`comments:${uniq('rate')}`);
    await join(ch);
    const results = [];
    for (let i = 0; i < 30; i++) results.push(await push(ch, 'new_comment', { content: `c${i}` }));
    assert.deepEqual(results.map((r) => r.status), Array(30).fill('ok'));
    for (let i = 0; i < 3; i++) {
      const r = await push(ch, 'new_comment', { content: `over ${i}` });
      assert.deepEqual(r, { status: 'error', response: { reason: 'rate_limit_exceeded' } });
    }
    // Reading is not posting, and another user has a budget of their own.
    const l = await push(ch, 'list_comments', { limit: 200 });
    assert.equal(l.status, 'ok');
    assert.equal(l.response.comments.length, 30);
    const other = open(uniq('calm')).channel(ch.topic);
    await join(other);
    assert.equal((await push(other, 'new_comment', { content: 'me too' })).status, 'ok');
  });

  it('ids are sortable by creation time, across users and videos', async () => {
    const v1 = uniq('ord1'), v2 = uniq('ord2');
    const a = open('ord-a').channel(`comments:${v1}`);
    const b = open('ord-b').channel(`comments:${v2}`);
    await join(a); await join(b);
    const acks = [];
    for (let i = 0; i < 8; i++) {
      const ch = i % 2 ? b : a;
      const r = await push(ch, 'new_comment', { content: `seq ${i}` });
      assert.equal(r.status, 'ok');
      acks.push(r.response.id);
      if (i === 3) await sleep(20);
    }
    assert.equal(strictlyIncreasing(acks), null);
    assert.deepEqual([...acks].sort(), acks);
    const h1 = (await push(a, 'list_comments', {})).response.comments;
    const h2 = (await push(b, 'list_comments', {})).response.comments;
    const all = [...h1, ...h2].sort((x, y) => (x.id < y.id ? -1 : 1));
    assert.deepEqual(all.map((c) => c.content), acks.map((_, i) => `seq ${i}`));
    for (let k = 1; k < all.length; k++) assert.ok(all[k - 1].inserted_at <= all[k].inserted_at);
  });

  it('comments are isolated per video', async () => {
    const vx = uniq('isox'), vy = uniq('isoy');
    const x = open('iso-x').channel(`comments:${vx}`);
    const y = open('iso-y').channel(`comments:${vy}`);
    const gotX = collect(x), gotY = collect(y);
    await join(x); await join(y);
    assert.equal((await push(x, 'new_comment', { content: 'only on x' })).status, 'ok');
    assert.equal((await push(y, 'new_comment', { content: 'only on y' })).status, 'ok');
    await waitFor(() => gotX.length === 1 && gotY.length === 1, { what: 'one comment each' });
    await sleep(200);
    assert.deepEqual(gotX.map((c) => [c.video_id, c.content]), [[vx, 'only on x']]);
    assert.deepEqual(gotY.map((c) => [c.video_id, c.content]), [[vy, 'only on y']]);
    const hx = (await push(x, 'list_comments', {})).response.comments;
    const hy = (await push(y, 'list_comments', {})).response.comments;
    assert.deepEqual(hx.map((c) => c.content), ['only on x']);
    assert.deepEqual(hy.map((c) => c.content), ['only on y']);
    // A video whose id is a prefix of another's sees none of it.
    const px = open('iso-p').channel(`comments:${vx.slice(0, -1)}`);
    assert.deepEqual(await join(px), { comments: [], has_more: false });
  });
});

describe('content_too_long with --max-comment-bytes 10', () => {
  let node, sock;
  before(async () => {
    node = await startNode({ args: ['--max-comment-bytes', '10'] });
    sock = socket(node, 'shorty');
  });
  after(async () => { sock.disconnect(); await stopClean(node, assert); });

  it('counts bytes of UTF-8, not characters', async () => {
    const ch = sock.channel(`comments:${uniq('len')}`);
    await join(ch);
    const cases = [
      ['abcdefghij', 'ok'], // 10 bytes
      ['abcdefghijk', 'content_too_long'], // 11 bytes
      ['ééééé', 'ok'], // 5 chars, 10 bytes
      ['éééééa', 'content_too_long'], // 6 chars, 11 bytes
      ['€€€€', 'content_too_long'], // 4 chars, 12 bytes
      ['😀😀😀', 'content_too_long'], // 3 code points (6 UTF-16 units), 12 bytes
      ['😀😀', 'ok'], // 8 bytes
    ];
    for (const [content, want] of cases) {
      const r = await push(ch, 'new_comment', { content });
      if (want === 'ok') assert.equal(r.status, 'ok', `${content}: ${JSON.stringify(r)}`);
      else assert.deepEqual(r, { status: 'error', response: { reason: want } }, content);
    }
    const h = (await push(ch, 'list_comments', {})).response.comments;
    assert.deepEqual(h.map((c) => c.content), ['abcdefghij', 'ééééé', '😀😀']);
  });
});

describe('history on a node with --rate-limit 1000/60', () => {
  let node;
  const socks = [];
  const open = (user) => { const s = socket(node, user); socks.push(s); return s; };
  before(async () => { node = await startNode({ args: ['--rate-limit', '1000/60'] }); });
  after(async () => {
    for (const s of socks) s.disconnect();
    await stopClean(node, assert);
  });

  it('list_comments pages back to the first comment: 50, 50, 20', async () => {
    const topic = `comments:${uniq('page')}`;
    const poster = open('pager').channel(topic);
    await join(poster);
    const acks = await postMany(poster, 120, { content: (i) => `page ${i}` });
    const sent = [...acks].sort((x, y) => x.i - y.i).map((a) => a.id);
    assert.equal(strictlyIncreasing(sent), null, 'ids follow posting order');

    const reader = open('reader').channel(topic);
    const first = await join(reader);
    assert.equal(first.comments.length, 50, 'join default limit');
    assert.equal(first.has_more, true);
    const pages = [first.comments];
    let before = first.comments[0].id;
    for (;;) {
      const r = await push(reader, 'list_comments', { before, limit: 50 });
      assert.equal(r.status, 'ok', JSON.stringify(r));
      pages.unshift(r.response.comments);
      if (!r.response.has_more) break;
      assert.ok(pages.length < 10, 'paging does not end');
      before = r.response.comments[0].id;
    }
    assert.deepEqual(pages.map((p) => p.length), [20, 50, 50]);
    for (const p of pages) assert.equal(strictlyIncreasing(p.map((c) => c.id)), null, 'oldest first in a page');
    const all = pages.flat();
    assert.equal(strictlyIncreasing(all.map((c) => c.id)), null, 'no duplicate or overlap between pages');
    assert.deepEqual(all.map((c) => c.id), sent, 'the union is every comment');
    assert.deepEqual(all.map((c) => c.content), sent.map((_, i) => `page ${i}`));
    // Before the very first comment there is nothing.
    const none = await push(reader, 'list_comments', { before: all[0].id, limit: 50 });
    assert.deepEqual(none.response, { comments: [], has_more: false });
    // list_comments without `before` gives the newest, like a join.
    const latest = await push(reader, 'list_comments', { limit: 7 });
    assert.deepEqual(latest.response.comments.map((c) => c.id), sent.slice(-7));
    assert.equal(latest.response.has_more, true);
  });

  it('join limit: default 50, 200 at most, larger values clamp to 200', async () => {
    const topic = `comments:${uniq('lim')}`;
    const poster = open('limiter').channel(topic);
    await join(poster);
    const acks = await postMany(poster, 210, { content: (i) => `lim ${i}` });
    const sent = [...acks].sort((x, y) => x.i - y.i).map((a) => a.id);
    const s = open('limreader');
    const check = async (params, n, more) => {
      const r = await join(s.channel(topic, params));
      assert.deepEqual(r.comments.map((c) => c.id), sent.slice(-n), JSON.stringify(params));
      assert.equal(r.has_more, more, JSON.stringify(params));
    };
    await check({}, 50, true);
    await check({ limit: 10 }, 10, true);
    await check({ limit: 200 }, 200, true);
    await check({ limit: 5000 }, 200, true);
    // Same clamp for list_comments.
    const ch = s.channel(topic);
    await join(ch);
    const r = await push(ch, 'list_comments', { limit: 1000 });
    assert.equal(r.response.comments.length, 200);
    const tail = await push(ch, 'list_comments', { before: r.response.comments[0].id, limit: 1000 });
    assert.deepEqual(tail.response.comments.map((c) => c.id), sent.slice(0, 10));
    assert.equal(tail.response.has_more, false);
  });

  it('a rejoin with `since` after a reconnect returns exactly what was missed', async () => {
    const topic = `comments:${uniq('since')}`;
    let lastSeen = null;
    const sockA = open('viewer');
    // params as a closure: the phoenix client re-evaluates them on rejoin.
    const a = sockA.channel(topic, () => (lastSeen ? { since: lastSeen } : {}));
    const replies = [];
    const live = [];
    a.on('new_comment', (c) => { live.push(c); lastSeen = c.id; });
    a.joinPush.receive('ok', (r) => {
      replies.push(r);
      for (const c of r.comments) lastSeen = c.id;
    });
    await join(a);
    const b = open('talker').channel(topic);
    await join(b);
    for (let i = 0; i < 3; i++) assert.equal((await push(b, 'new_comment', { content: `before ${i}` })).status, 'ok');
    await waitFor(() => live.length === 3, { what: 'three live comments' });

    sockA.disconnect();
    await waitFor(() => !sockA.isConnected(), { what: 'viewer disconnected' });
    const missed = [];
    for (let i = 0; i < 5; i++) {
      const r = await push(b, 'new_comment', { content: `missed ${i}` });
      assert.equal(r.status, 'ok');
      missed.push(r.response.id);
    }
    sockA.connect();
    await waitFor(() => replies.length === 2, { what: 'the rejoin reply' });
    assert.deepEqual(replies[1].comments.map((c) => c.id), missed);
    assert.deepEqual(replies[1].comments.map((c) => c.content), missed.map((_, i) => `missed ${i}`));
    assert.equal(replies[1].has_more, false);
    assert.equal(live.length, 3, 'nothing was delivered live while away');
    // And the channel is live again.
    assert.equal((await push(b, 'new_comment', { content: 'after' })).status, 'ok');
    await waitFor(() => live.length === 4 && live[3].content === 'after', { what: 'live after rejoin' });
    // since = the newest id: nothing; since with a limit: the oldest `limit` after it, has_more.
    const s2 = open('viewer2');
    assert.deepEqual(await join(s2.channel(topic, { since: live[3].id })), { comments: [], has_more: false });
    const part = await join(s2.channel(topic, { since: live[2].id, limit: 2 }));
    assert.deepEqual(part.comments.map((c) => c.id), missed.slice(0, 2));
    assert.equal(part.has_more, true);
  });
});

describe('durability across a clean restart', () => {
  it('history survives SIGTERM and a restart on the same data dir', async () => {
    let node = await startNode();
    const data = node.data;
    const topic = `comments:${uniq('dur')}`;
    try {
      let s = socket(node, 'keeper');
      let ch = s.channel(topic);
      await join(ch);
      const acks = await postMany(ch, 12, { inFlight: 4, content: (i) => `kept ${i}` });
      const ids = [...acks].sort((x, y) => x.i - y.i).map((a) => a.id);
      s.disconnect();
      await stopClean(node, assert, { keepData: true });

      node = await startNode({ data });
      s = socket(node, 'keeper');
      ch = s.channel(topic);
      const r = await join(ch);
      assert.deepEqual(r.comments.map((c) => c.id), ids);
      assert.deepEqual(r.comments.map((c) => c.content), ids.map((_, i) => `kept ${i}`));
      assert.ok(r.comments.every((c) => c.user_id === 'keeper' && c.video_id === topic.slice(9)));
      // New ids after the restart still sort after the old ones.
      const p = await push(ch, 'new_comment', { content: 'after restart' });
      assert.equal(p.status, 'ok');
      assert.ok(p.response.id > ids[ids.length - 1], `${p.response.id} > ${ids[ids.length - 1]}`);
      s.disconnect();
      await stopClean(node, assert);
    } finally {
      if (!node.exited) await node.kill9();
      rmSync(data, { recursive: true, force: true });
    }
  });
});
