// SPDX-License-Identifier: Apache-2.0
// Bad input never crashes a node or harms another connection (design.md,
// "Client protocol"): every case gets an error reply or a close with the RFC
// 6455 code that fits, and afterwards two already-connected bystanders still
// get heartbeat replies and each other's broadcasts.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  startNode, stopCleanNow, raw, rawOpen, rawHeartbeat, rawJoin, wsHandshake, wsFrame, bystanders,
  socket, connected, ping, token, sleep, waitFor,
} from './lib.mjs';

const MAX_MSG = 65536;
const uniq = (p) => `${p}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;

// Sends `data` on a fresh raw V2 (or V1) socket and expects a close `code`.
async function expectClose(node, send, codes, { vsn = '2.0.0', what } = {}) {
  const ws = await rawOpen(node, { vsn });
  ws.on('error', () => {});
  send(ws);
  const info = await Promise.race([ws.closed(), sleep(5000).then(() => null)]);
  if (!info) { ws.terminate(); throw new Error(`${what}: not closed within 5 s; got ${JSON.stringify(ws.msgs).slice(0, 300)}`); }
  assert.ok([].concat(codes).includes(info.code), `${what}: close ${JSON.stringify(info)}, want ${codes}`);
  return info;
}

// Opens a hand-made WebSocket, writes `bytes`, expects a close frame `code`
// and the TCP connection to end.
async function frameClose(node, bytes, codes, what) {
  const c = await wsHandshake(node);
  try {
    for (const b of [].concat(bytes)) c.send(b);
    const f = await c.closed(5000).catch((e) => { throw new Error(`${what}: ${e.message}`); });
    assert.ok(f, `${what}: connection ended without a close frame`);
    assert.ok([].concat(codes).includes(f.code), `${what}: close ${f.code} "${f.reason}", want ${codes}`);
    return f;
  } finally { c.sock.destroy(); }
}

describe('bad input on one node', () => {
  let node, by;
  before(async () => {
    node = await startNode({ args: ['--max-message-bytes', String(MAX_MSG), '--rate-limit', '100000/60'] });
    by = await bystanders(node);
  });
  after(async () => {
    by?.close();
    await stopCleanNow(node, assert);
  });

  it('malformed JSON closes with 1007 and a reason', async () => {
    const cases = ['{', '[', 'not json', '[1,2', '[null,"1","phoenix","heartbeat",{}', '\u0000', ' ', '[null,"1","phoenix","heartbeat",{}]]',
      '[null,"1","phoenix","heartbeat",{"a":}]', "['1','1','phoenix','heartbeat',{}]"];
    for (const c of cases) {
      const info = await expectClose(node, (ws) => ws.send(c), 1007, { what: JSON.stringify(c) });
      assert.ok(info.reason.length > 0, `${JSON.stringify(c)}: close without a reason`);
    }
    // An empty text frame.
    await expectClose(node, (ws) => ws.send(''), 1007, { what: 'empty frame' });
    await by.check('after malformed JSON');
  });

  it('JSON of the wrong shape or types closes with 1007 (V2)', async () => {
    const cases = [
      '{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}', // an object in V2
      '[null,"1","phoenix","heartbeat"]', // 4 elements
      '[]', '[null]', 'null', '"str"', '123', 'true',
      '[null,"1",5,"heartbeat",{}]', // topic a number
      '[null,"1",null,"heartbeat",{}]',
      '[null,"1","phoenix",7,{}]', // event a number
      '[null,"1","phoenix",null,{}]',
      '[null,"1",["phoenix"],"heartbeat",{}]',
      '[null,"1","phoenix",{"e":1},{}]',
    ];
    for (const c of cases) {
      await expectClose(node, (ws) => ws.send(c), 1007, { what: c });
    }
    await by.check('after wrong shapes');
  });

  it('JSON of the wrong shape or types closes with 1007 (V1)', async () => {
    const cases = [
      '[null,"1","phoenix","heartbeat",{}]', // an array in V1
      '{"event":"heartbeat","payload":{},"ref":"1"}', // no topic
      '{"topic":"phoenix","payload":{},"ref":"1"}', // no event
      '{"topic":5,"event":"heartbeat","payload":{},"ref":"1"}',
      '{"topic":"phoenix","event":false,"payload":{},"ref":"1"}',
      'null', '42',
    ];
    for (const c of cases) {
      await expectClose(node, (ws) => ws.send(c), 1007, { vsn: '1.0.0', what: `V1 ${c}` });
    }
    await by.check('after wrong V1 shapes');
  });

  it('Phoenix-compatible leniency: extra V2 elements are accepted and the ref echoed', async () => {
    const ws = await rawOpen(node);
    try {
      ws.send('[null,"e1","phoenix","heartbeat",{},"extra",1]');
      const r = await ws.next((m) => m[1] === 'e1');
      assert.deepEqual(r, [null, 'e1', 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
    } finally { ws.close(); }
  });

  it('deeply nested JSON neither crashes nor hangs the node', async () => {
    const depth = 30000;
    const deep = `[null,"d1","phoenix","heartbeat",{"x":${'['.repeat(depth)}${']'.repeat(depth)}}]`;
    const ws = await rawOpen(node);
    ws.on('error', () => {});
    ws.send(deep);
    // Either a close 1007 (parser depth limit) or a reply is acceptable.
    await waitFor(() => ws.closeInfo || ws.msgs.find((m) => m[1] === 'd1'), { what: 'deep JSON outcome', timeout: 5000 });
    if (ws.closeInfo) assert.equal(ws.closeInfo.code, 1007, JSON.stringify(ws.closeInfo));
    ws.terminate();
    await by.check('after deep JSON');
  });

  it('wrong payload types on a joined channel get error replies, the socket stays open', async () => {
    const ws = await rawOpen(node, { user: 'typer' });
    const topic = `comments:${uniq('types')}`;
    try {
      const j = await rawJoin(ws, topic);
      const jr = j[0];
      const cases = [
        ['new_comment', 'a string', 'invalid_content'],
        ['new_comment', null, 'invalid_content'],
        ['new_comment', [], 'invalid_content'],
        ['new_comment', {}, 'invalid_content'],
        ['new_comment', { content: 5 }, 'invalid_content'],
        ['new_comment', { content: '' }, 'invalid_content'],
        ['new_comment', { content: '   \n\t ' }, 'invalid_content'],
        ['new_comment', { content: '\u00a0' }, 'invalid_content'],
        ['new_comment', { content: ' \u3000\u00a0\u2028\u202f ' }, 'invalid_content'],
        ['new_comment', { content: 'x'.repeat(2001) }, 'content_too_long'],
        ['list_comments', { limit: 'ten' }, 'invalid_params'],
        ['list_comments', { before: 7 }, 'invalid_params'],
        ['list_comments', { before: 'not-a-comment-id' }, 'invalid_params'],
        ['list_comments', { before: 'x'.repeat(5000) }, 'invalid_params'],
        ['list_comments', 'nope', 'invalid_params'],
      ];
      for (const [i, [ev, payload, reason]] of cases.entries()) {
        ws.sendJson([jr, `t${i}`, topic, ev, payload]);
        const r = await ws.next((m) => m[1] === `t${i}`);
        assert.deepEqual(r, [jr, `t${i}`, topic, 'phx_reply', { status: 'error', response: { reason } }],
          `${ev} ${JSON.stringify(payload).slice(0, 60)}`);
      }
      // 2000 bytes of UTF-8 exactly (1000 two-byte characters) is accepted.
      ws.sendJson([jr, 'ok1', topic, 'new_comment', { content: 'é'.repeat(1000) }]);
      assert.equal((await ws.next((m) => m[1] === 'ok1'))[4].status, 'ok');
      ws.sendJson([jr, 'ok2', topic, 'new_comment', { content: 'é'.repeat(1001) }]);
      assert.deepEqual((await ws.next((m) => m[1] === 'ok2'))[4], { status: 'error', response: { reason: 'content_too_long' } });
      // Bad join params get an error reply and leave the socket usable.
      const joins = [
        [`comments:${uniq('j')}`, { limit: 'ten' }, 'invalid_params'],
        [`comments:${uniq('j')}`, { since: 42 }, 'invalid_params'],
        [`comments:${uniq('j')}`, { since: 'not-a-comment-id' }, 'invalid_params'],
        [`comments:${'v'.repeat(300)}`, {}, 'invalid_topic'],
        ...['a/b', '..', 'a/../b', 'a.b', 'a$b', 'a#b', 'a[b]', 'a b', 'a\u0001b', 'a\u007fb', 'vidéo', 'a\nb']
          .map((v) => [`comments:${v}`, {}, 'invalid_topic']),
      ];
      for (const [t, params, reason] of joins) {
        const r = await rawJoin(ws, t, params);
        assert.deepEqual(r[4], { status: 'error', response: { reason } }, `join ${t.slice(0, 40)} ${JSON.stringify(params)}`);
      }
      // The allowed set: ASCII letters, digits, '-', '_' and ':'.
      assert.equal((await rawJoin(ws, `comments:yt:${uniq('Ab-_')}`))[4].status, 'ok');
      // A payload that is not an object (null included) is invalid_params.
      for (const [i, p] of [null, [], 'x', 5].entries()) {
        ws.sendJson([`n${i}`, `n${i}`, `comments:${uniq('np')}`, 'phx_join', p]);
        assert.deepEqual((await ws.next((m) => m[1] === `n${i}`))[4], { status: 'error', response: { reason: 'invalid_params' } }, JSON.stringify(p));
      }
      await rawHeartbeat(ws);
    } finally { ws.close(); }
    await by.check('after wrong payload types');
  });

  it('a \\u0000 escape in content (valid JSON) gets invalid_content, not a close', async () => {
    const ws = await rawOpen(node, { user: 'nul' });
    const topic = `comments:${uniq('nul')}`;
    try {
      const j = await rawJoin(ws, topic);
      ws.send(`["${j[0]}","n1","${topic}","new_comment",{"content":"nul\\u0000inside"}]`);
      const r = await ws.next((m) => m[1] === 'n1');
      assert.deepEqual(r[4], { status: 'error', response: { reason: 'invalid_content' } });
      await rawHeartbeat(ws);
    } finally { ws.close(); }
    await by.check('after a NUL escape');
  });

  it('valid JSON jansson cannot hold gets error replies; refs of any size are echoed as sent; other channels unharmed', async () => {
    // Lone and reversed surrogate escapes (JSON.stringify of text cut in
    // the middle of an emoji), integers beyond int64, 1e999: each used to
    // close the whole socket with 1007.
    const c = await wsHandshake(node, { user: 'surrogate' });
    const topic = `comments:${uniq('sur')}`;
    const other = `comments:${uniq('other')}`;
    const reply = async (ref) => {
      const f = await c.next((x) => x.opcode === 1 && JSON.parse(x.payload)[1] === ref);
      return JSON.parse(f.payload);
    };
    try {
      c.text(['j1', 'j1', topic, 'phx_join', {}]);
      assert.equal((await reply('j1'))[4].status, 'ok');
      c.text(['j2', 'j2', other, 'phx_join', {}]);
      assert.equal((await reply('j2'))[4].status, 'ok');
      const pushes = [
        ['s1', 'new_comment', '{"content":"a\\ud800b"}', 'invalid_content'],
        ['s2', 'new_comment', '{"content":"cut \\ud83d"}', 'invalid_content'],
        ['s3', 'new_comment', '{"content":"\\udc00\\ud800 reversed"}', 'invalid_content'],
        ['s4', 'list_comments', '{"limit":99999999999999999999}', 'invalid_params'],
        ['s5', 'list_comments', '{"limit":1e999}', 'invalid_params'],
        ['s6', 'list_comments', '{"before":"\\ud800"}', 'invalid_params'],
      ];
      for (const [ref, ev, payload, reason] of pushes) {
        c.send(wsFrame(1, `["j1","${ref}","${topic}","${ev}",${payload}]`));
        assert.deepEqual(await reply(ref), ['j1', ref, topic, 'phx_reply', { status: 'error', response: { reason } }], `${ev} ${payload}`);
      }
      // Joins with such params: invalid_params, the socket stays.
      for (const [ref, params] of [['b1', '{"limit":99999999999999999999}'], ['b2', '{"limit":1e999}'], ['b3', '{"since":"\\udfff"}']]) {
        c.send(wsFrame(1, `["${ref}","${ref}","comments:${uniq('bj')}","phx_join",${params}]`));
        assert.deepEqual((await reply(ref))[4], { status: 'error', response: { reason: 'invalid_params' } }, params);
      }
      // Refs beyond int64 and beyond double are echoed byte for byte.
      for (const ref of ['99999999999999999999', '-123456789012345678901234567890', '1e999', '"\\ud800"']) {
        c.send(wsFrame(1, `[null,${ref},"phoenix","heartbeat",{}]`));
        const f = await c.next((x) => x.opcode === 1 && x.payload.toString().startsWith(`[null,${ref},`));
        assert.equal(f.payload.toString(), `[null,${ref},"phoenix","phx_reply",{"status":"ok","response":{}}]`);
      }
      // A join_ref beyond int64 is stamped, as sent, on the channel's replies.
      const big = '12345678901234567890123';
      const bigTopic = `comments:${uniq('bigref')}`;
      c.send(wsFrame(1, `[${big},${big},"${bigTopic}","phx_join",{}]`));
      const jf = await c.next((x) => x.opcode === 1 && x.payload.toString().startsWith(`[${big},${big},"${bigTopic}","phx_reply"`));
      assert.equal(JSON.parse(jf.payload)[4].status, 'ok');
      c.send(wsFrame(1, `[${big},"p1","${bigTopic}","new_comment",{"content":"big join ref"}]`));
      const pf = await c.next((x) => x.opcode === 1 && x.payload.toString().startsWith(`[${big},"p1",`));
      assert.equal(JSON.parse(pf.payload)[4].status, 'ok');
      // The socket and its other channel still work.
      assert.equal(c.ended, false, 'socket closed');
      assert.equal(c.frames.find((f) => f.opcode === 8), undefined, 'close frame sent');
      c.text(['j2', 'o1', other, 'new_comment', { content: 'still here' }]);
      assert.equal((await reply('o1'))[4].status, 'ok');
      await c.next((x) => x.opcode === 1 && JSON.parse(x.payload)[3] === 'new_comment' && JSON.parse(x.payload)[4].content === 'still here');
    } finally { c.sock.destroy(); }
    await by.check('after JSON jansson cannot hold');
  });

  it('invalid UTF-8 in a text frame closes with 1007', async () => {
    const cases = {
      'lone 0xff': Buffer.from([0x5b, 0xff, 0x5d]),
      'inside a JSON string': Buffer.concat([Buffer.from('[null,"1","phoenix","heartbeat",{"a":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}]')]),
      'overlong slash': Buffer.concat([Buffer.from('[null,"1","phoenix","heartbeat",{"a":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}]')]),
      'UTF-16 surrogate': Buffer.concat([Buffer.from('[null,"1","phoenix","heartbeat",{"a":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}]')]),
      'above U+10FFFF': Buffer.concat([Buffer.from('[null,"1","phoenix","heartbeat",{"a":"'), Buffer.from([0xf4, 0x90, 0x80, 0x80]), Buffer.from('"}]')]),
      'truncated at the end': Buffer.concat([Buffer.from('[null,"1","phoenix","heartbeat",{}]'), Buffer.from([0xe2, 0x82])]),
    };
    for (const [name, buf] of Object.entries(cases)) {
      await expectClose(node, (ws) => ws.send(buf, { binary: false }), 1007, { what: name });
    }
    await by.check('after invalid UTF-8');
  });

  it('valid UTF-8 split across fragments is accepted', async () => {
    const c = await wsHandshake(node);
    try {
      const msg = Buffer.from('[null,"u1","phoenix","heartbeat",{"a":"é€𝄞"}]');
      const cut = msg.indexOf(Buffer.from('€')) + 1; // in the middle of a 3-byte sequence
      c.send(wsFrame(1, msg.subarray(0, cut), { fin: false }));
      c.send(wsFrame(9, 'ping-in-between')); // a control frame between fragments is allowed
      c.send(wsFrame(0, msg.subarray(cut)));
      const pong = await c.next((f) => f.opcode === 10);
      assert.equal(pong.payload.toString(), 'ping-in-between');
      const r = await c.next((f) => f.opcode === 1);
      assert.deepEqual(JSON.parse(r.payload.toString()), [null, 'u1', 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
    } finally { c.sock.destroy(); }
  });

  it('a message over --max-message-bytes closes with 1009; one just under is fine', async () => {
    const big = (n) => `[null,"b1","phoenix","heartbeat",{"pad":"${'x'.repeat(n)}"}]`;
    const okMsg = big(MAX_MSG - 200);
    assert.ok(Buffer.byteLength(okMsg) <= MAX_MSG);
    const ws = await rawOpen(node);
    try {
      ws.send(okMsg);
      assert.equal((await ws.next((m) => m[1] === 'b1'))[4].status, 'ok');
    } finally { ws.close(); }
    await expectClose(node, (w) => w.send(big(MAX_MSG + 10)), 1009, { what: 'one frame over the limit' });
    await expectClose(node, (w) => w.send(big(4 * 1024 * 1024)), 1009, { what: '4 MiB frame' });
    // Many small fragments adding up to more than the limit.
    await frameClose(node, [
      wsFrame(1, 'x'.repeat(30000), { fin: false }),
      wsFrame(0, 'x'.repeat(30000), { fin: false }),
      wsFrame(0, 'x'.repeat(30000), { fin: false }),
      wsFrame(0, 'x'.repeat(30000), { fin: true }),
    ], 1009, 'fragments over the limit');
    // A header announcing 2^62 bytes.
    const hdr = Buffer.from([0x81, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    await frameClose(node, hdr, [1009, 1002], '2^62-byte header');
    await by.check('after oversize messages');
  });

  it('RFC 6455 violations close with 1002', async () => {
    const hb = '[null,"1","phoenix","heartbeat",{}]';
    const cases = [
      ['unmasked client frame', wsFrame(1, hb, { mask: false })],
      ['RSV1 set (no extension agreed)', wsFrame(1, hb, { rsv: 4 })],
      ['RSV2 set', wsFrame(1, hb, { rsv: 2 })],
      ['RSV3 set', wsFrame(1, hb, { rsv: 1 })],
      ['reserved opcode 3', wsFrame(3, hb)],
      ['reserved control opcode 0xB', wsFrame(0xb, 'x')],
      ['fragmented ping', wsFrame(9, 'ping', { fin: false })],
      ['ping over 125 bytes', wsFrame(9, 'p'.repeat(126))],
      ['continuation with nothing to continue', wsFrame(0, hb)],
      ['new text frame inside a fragmented message', [wsFrame(1, '[null,', { fin: false }), wsFrame(1, hb)]],
      ['close with a 1-byte payload', wsFrame(8, Buffer.from([3]))],
      ['close with code 1005 (reserved)', wsFrame(8, Buffer.from([0x03, 0xed]))],
      ['close with code 999', wsFrame(8, Buffer.from([0x03, 0xe7]))],
    ];
    for (const [what, bytes] of cases) await frameClose(node, bytes, 1002, what);
    // A close whose reason is not UTF-8: 1007 (RFC 6455 8.1) or 1002.
    await frameClose(node, wsFrame(8, Buffer.from([0x03, 0xe8, 0xff, 0xfe])), [1007, 1002], 'close reason not UTF-8');
    await by.check('after protocol violations');
  });

  it('ping gets a pong with the same payload; a client close is echoed', async () => {
    const c = await wsHandshake(node);
    try {
      c.send(wsFrame(9, 'hello-ping'));
      const p = await c.next((f) => f.opcode === 10);
      assert.equal(p.payload.toString(), 'hello-ping');
      assert.equal(p.masked, false, 'server frames must not be masked');
      c.send(wsFrame(8, Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from('bye')])));
      const f = await c.closed();
      assert.ok(f, 'no close frame echoed');
      assert.equal(f.code, 1000);
    } finally { c.sock.destroy(); }
    // A binary frame that is not a kind-0 push: unknown kind and truncated header.
    for (const [what, buf] of [['kind 7', Buffer.from([7, 1, 1, 1, 1, 65, 66, 67, 68])],
      ['kind 0 truncated', Buffer.from([0, 5, 5, 5])], ['empty binary', Buffer.alloc(0)],
      ['kind 0 lengths past the end', Buffer.from([0, 200, 200, 200, 200, 65])]]) {
      await expectClose(node, (ws) => ws.send(buf, { binary: true }), [1003, 1007], { what });
    }
    await by.check('after ping, close and bad binary');
  });

  it('a flood of 10,000 heartbeats from one client: another client still gets timely replies', async () => {
    const flooder = await rawOpen(node, { user: 'flooder' });
    const N = 10000;
    let got = 0;
    flooder.on('message', () => { got++; });
    const lat = [];
    let flooding = true;
    const probe = (async () => {
      while (flooding) {
        const t0 = Date.now();
        await rawHeartbeat(by.watcher, 3000);
        lat.push(Date.now() - t0);
        await sleep(20);
      }
    })();
    const t0 = Date.now();
    for (let i = 0; i < N; i++) flooder.send(`[null,"f${i}","phoenix","heartbeat",{}]`);
    await waitFor(() => got >= N || flooder.closeInfo, { timeout: 30000, what: `flood replies (${got})` });
    flooding = false;
    await probe;
    const took = Date.now() - t0;
    assert.equal(flooder.closeInfo, null, `flooder closed: ${JSON.stringify(flooder.closeInfo)} after ${got} replies`);
    assert.equal(got, N);
    const max = Math.max(...lat);
    assert.ok(max < 1500, `bystander heartbeat latency up to ${max} ms during the flood (${lat.length} probes, flood took ${took} ms)`);
    flooder.close();
    await by.check('after heartbeat flood');
  });

  it('200 connections dropped abruptly (mid-handshake, mid-frame, after joining) leave no trace', async () => {
    const stats = () => node.adminJson('/v1/stats');
    const base = await stats();
    // 1. 100 upgraded sockets, half of them joined, terminated without a close.
    const socks = [];
    for (let i = 0; i < 100; i++) socks.push(raw(node, { user: `drop${i}` }));
    await Promise.all(socks.map((s) => s.opened));
    await Promise.all(socks.slice(0, 50).map((s, i) => rawJoin(s, `comments:drop${i % 5}`)));
    for (const s of socks) s.terminate();
    // 2. 50 half-sent handshakes and 50 upgraded sockets cut in the middle of a frame.
    const cut = [];
    for (let i = 0; i < 50; i++) {
      const s = net.connect(node.port, node.host);
      s.on('error', () => {});
      s.write(`GET /socket/websocket?vsn=2.0.0&token=${token('half')} HTTP/1.1\r\nHost: x\r\nUpgrade: web`);
      cut.push(s);
    }
    const mids = await Promise.all(Array.from({ length: 50 }, () => wsHandshake(node)));
    for (const m of mids) {
      m.sock.on('error', () => {});
      m.send(wsFrame(1, '[null,"1","phoenix","heartbeat",{}]').subarray(0, 12));
    }
    await sleep(100);
    for (const s of cut) s.resetAndDestroy ? s.resetAndDestroy() : s.destroy();
    for (const m of mids) m.sock.destroy();
    await waitFor(async () => {
      const s = await stats();
      return s.sockets.open <= base.sockets.open && s.channels.joined <= base.channels.joined;
    }, { timeout: 10000, what: 'sockets and channels back to the baseline' });
    await by.check('after 200 abrupt drops');
  });
});

describe('slow consumers', () => {
  let node, by;
  before(async () => {
    node = await startNode({ args: ['--max-out-bytes', '65536', '--rate-limit', '100000/60', '--max-comment-bytes', '30000'] });
    by = await bystanders(node);
  });
  after(async () => { by?.close(); await stopCleanNow(node, assert); });

  it('a client that stops reading while its topic floods is closed; others are unharmed', { timeout: 60000 }, async (t) => {
    const topic = `comments:${uniq('flood')}`;
    const slow = await wsHandshake(node, { user: 'sloth' });
    slow.text(['1', '1', topic, 'phx_join', {}]);
    await slow.next((f) => f.opcode === 1 && JSON.parse(f.payload)[1] === '1');
    slow.sock.pause();
    const poster = await rawOpen(node, { user: 'firehose' });
    const pj = await rawJoin(poster, topic);
    assert.equal(pj[4].status, 'ok');
    const content = 'z'.repeat(29000);
    let sent = 0;
    let closedSlow = false;
    for (; sent < 1000 && !closedSlow; sent++) {
      poster.sendJson([pj[0], `p${sent}`, topic, 'new_comment', { content }]);
      const r = await poster.next((m) => m[1] === `p${sent}`);
      assert.equal(r[4].status, 'ok', JSON.stringify(r));
      await poster.next((m) => m[3] === 'new_comment');
      if (sent % 20 === 19) closedSlow = (await node.adminJson('/v1/stats')).sockets.slow_closed > 0;
    }
    assert.ok(closedSlow, `no slow consumer closed after ${sent} broadcasts of ${content.length} bytes`);
    // The slow socket, once it reads again, finds its connection ended.
    slow.sock.resume();
    await slow.closed(10000);
    assert.ok(slow.bytes < sent * content.length, `slow client received ${slow.bytes} bytes of ${sent * content.length}`);
    t.diagnostic(`slow consumer closed after ${sent} broadcasts of ${content.length} bytes; it had received ${slow.bytes} bytes`);
    assert.equal(poster.closeInfo, null, 'the reading poster must not be closed');
    poster.close();
    await by.check('after a slow consumer');
  });

  it('a client that pipelines but reads is not a slow consumer, even at the minimum --max-out-bytes', async () => {
    // 3,000 heartbeats in one TCP write (~130 KB): the replies (~190 KB)
    // exceed --max-out-bytes in total but the client reads them all.
    const c = await wsHandshake(node, { user: 'pipeliner' });
    const N = 3000;
    const frames = [];
    for (let i = 0; i < N; i++) frames.push(wsFrame(1, `[null,"${i}","phoenix","heartbeat",{}]`));
    c.send(Buffer.concat(frames));
    await waitFor(() => c.frames.length >= N || c.ended, { timeout: 20000, what: `pipelined replies (${c.frames.length})` });
    assert.equal(c.ended, false, `closed after ${c.frames.length} replies`);
    const last = JSON.parse(c.frames[N - 1].payload);
    assert.deepEqual(last, [null, String(N - 1), 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
    c.sock.destroy();
    await by.check('after pipelining');
  });
});

describe('idle timeout', () => {
  let node;
  before(async () => { node = await startNode({ args: ['--idle-timeout', '2'] }); });
  after(async () => { await stopCleanNow(node, assert); });

  it('a silent socket is closed after --idle-timeout; a heartbeating one stays', { timeout: 20000 }, async () => {
    const quiet = await rawOpen(node, { user: 'quiet' });
    const chatty = await rawOpen(node, { user: 'chatty' });
    const sock = socket(node, 'phx', { heartbeatIntervalMs: 500 });
    await connected(sock);
    let phxClosed = false;
    sock.onClose(() => { phxClosed = true; });
    const t0 = Date.now();
    let beating = true;
    const beat = (async () => { while (beating) { await rawHeartbeat(chatty); await sleep(500); } })();
    const info = await Promise.race([quiet.closed(), sleep(8000).then(() => null)]);
    const waited = Date.now() - t0;
    assert.ok(info, 'silent socket still open after 8 s with --idle-timeout 2');
    assert.ok(waited >= 1500, `closed too early: ${waited} ms`);
    assert.ok([1000, 1001, 1002, 1008].includes(info.code), `close ${JSON.stringify(info)}`);
    await sleep(Math.max(0, 4500 - waited));
    beating = false;
    await beat;
    assert.equal(chatty.closeInfo, null, 'a heartbeating socket must stay open');
    assert.equal(phxClosed, false, 'the phoenix client heartbeating every 500 ms was closed');
    await ping(sock);
    sock.disconnect();
    chatty.close();
  });
});
