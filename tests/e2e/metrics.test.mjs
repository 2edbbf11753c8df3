// SPDX-License-Identifier: Apache-2.0
// /metrics as Prometheus reads it: the whole exposition passes a strict
// parser (prom.mjs), the families an operator alerts on exist with their
// types, and they move with real traffic: comments acknowledged (ack and
// commit histograms), refusals split by reason, joins by channel kind,
// close codes, bytes, leader, members by status, cross-node delivery.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startNode, stopCleanNow, socket, connected, join, push, raw, waitFor, token, sleep,
} from './lib.mjs';
import { parseExposition, sample } from './prom.mjs';

async function scrape(node) {
  const res = await fetch(`${node.admin}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return parseExposition(await res.text());
}

async function refusedUpgrade(node, query, headers) {
  const ws = raw(node, { query, headers });
  ws.on('error', () => {});
  await ws.opened.catch(() => {});
  ws.terminate();
}

describe('the exposition parser', () => {
  it('refuses what Prometheus would refuse', () => {
    const bad = {
      'no final newline': '# TYPE a gauge\na 1',
      'bad value': '# TYPE a gauge\na one\n',
      'TYPE after samples': 'a 1\n# TYPE a gauge\n',
      'two TYPEs': '# TYPE a gauge\n# TYPE a gauge\na 1\n',
      'series twice': '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n',
      'interleaved families': '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="2"} 1\n',
      'bad escape': '# TYPE a gauge\na{x="\\q"} 1\n',
      'counter without _total': '# TYPE a counter\na 1\n',
      'histogram not cumulative': '# TYPE h histogram\nh_bucket{le="1"} 5\nh_bucket{le="+Inf"} 4\nh_sum 1\nh_count 4\n',
      'histogram +Inf != count': '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n',
      'histogram without +Inf': '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
      'bad name': '# TYPE 1a gauge\n',
    };
    for (const [name, text] of Object.entries(bad)) {
      assert.throws(() => parseExposition(text), undefined, name);
    }
    const ok = parseExposition('# HELP a_total A "quoted" \\\\ help.\n# TYPE a_total counter\na_total{x="a\\"b\\\\c\\nd"} 3 1700000000000\n');
    assert.equal(sample(ok, 'a_total', { x: 'a"b\\c\nd' }), 3);
  });
});

describe('/metrics', () => {
  let a;
  let b;
  before(async () => {
    a = await startNode({ name: 'ma' });
    b = await startNode({ name: 'mb', join: [a.bus] });
    await waitFor(async () => sample(await scrape(a), 'parley_cluster_members', { status: 'alive' }) === 2,
      { what: 'two members alive' });
  });
  after(async () => { await stopCleanNow(b, assert); await stopCleanNow(a, assert); });

  it('names, types and help for every family an operator alerts on', async () => {
    const m = await scrape(a);
    const want = {
      process_resident_memory_bytes: 'gauge', process_open_fds: 'gauge', process_max_fds: 'gauge',
      process_cpu_seconds_total: 'counter', process_start_time_seconds: 'gauge',
      parley_build_info: 'gauge', parley_ready: 'gauge', parley_is_leader: 'gauge',
      parley_connections_open: 'gauge', parley_websockets_open: 'gauge',
      parley_connections_accepted_total: 'counter', parley_connections_refused_total: 'counter',
      parley_upgrades_total: 'counter', parley_upgrades_refused_total: 'counter',
      parley_received_bytes_total: 'counter', parley_sent_bytes_total: 'counter',
      parley_websocket_closes_total: 'counter', parley_slow_consumers_closed_total: 'counter',
      parley_channel_joins_total: 'counter', parley_channels_joined: 'gauge',
      parley_comments_accepted_total: 'counter', parley_comments_refused_total: 'counter',
      parley_comment_ack_seconds: 'histogram', parley_storage_commit_seconds: 'histogram',
      parley_cluster_delivery_seconds: 'histogram', parley_loop_lag_seconds: 'histogram',
      parley_storage_file_bytes: 'gauge', parley_storage_map_size_bytes: 'gauge',
      parley_cluster_members: 'gauge', parley_cluster_messages_discarded_total: 'counter',
      parley_cluster_broadcast_gaps_total: 'counter', parley_admin_refused_total: 'counter',
    };
    for (const [name, type] of Object.entries(want)) {
      const f = m.get(name);
      assert.ok(f, `family ${name} missing`);
      assert.equal(f.type, type, name);
      assert.ok(f.help && f.help.length > 5, `${name} has no help`);
    }
    for (const f of m.values()) {
      assert.ok(f.help, `${f.name} has no HELP`);
      assert.notEqual(f.type, 'untyped', `${f.name} has no TYPE`);
    }
    const bi = m.get('parley_build_info').samples[0];
    assert.match(bi.labels.version, /^\d+\.\d+\.\d+$/);
    assert.ok(bi.labels.commit.length > 0);
    assert.equal(bi.value, 1);
    assert.ok(sample(m, 'process_resident_memory_bytes') > 1 << 20);
    assert.ok(sample(m, 'process_open_fds') > 5);
    assert.ok(Math.abs(sample(m, 'process_start_time_seconds') - Date.now() / 1000) < 600);
    // The loop-lag timer runs every 250 ms.
    await waitFor(async () => sample(await scrape(a), 'parley_loop_lag_seconds_count') > 0, { what: 'loop lag observed' });
    // Exactly one of the two nodes leads, and both agree it is ready.
    const mb = await scrape(b);
    assert.equal(sample(m, 'parley_is_leader') + sample(mb, 'parley_is_leader'), 1);
    assert.equal(sample(m, 'parley_ready'), 1);
    for (const s of ['suspect', 'dead', 'left']) assert.equal(sample(m, 'parley_cluster_members', { status: s }), 0, s);
  });

  it('counters move with traffic, split by cause', async () => {
    const m0 = await scrape(a);
    const mb0 = await scrape(b);
    const v0 = (n, l) => sample(m0, n, l) ?? 0;
    // Comments posted on a, watched on b.
    const watcher = socket(b, 'watcher');
    const poster = socket(a, 'poster');
    await Promise.all([connected(watcher), connected(poster)]);
    const wch = watcher.channel('comments:metrics', {});
    const pch = poster.channel('comments:metrics', {});
    await join(wch);
    await join(pch);
    const got = [];
    wch.on('new_comment', (c) => got.push(c));
    for (let i = 0; i < 3; i++) assert.equal((await push(pch, 'new_comment', { content: `c${i}` })).status, 'ok');
    assert.equal((await push(pch, 'new_comment', { content: '   ' })).response.reason, 'invalid_content');
    assert.equal((await push(pch, 'new_comment', { content: 'x'.repeat(3000) })).response.reason, 'content_too_long');
    await waitFor(() => got.length === 3, { what: 'three comments on b' });
    // Refused upgrades: a bad token, a bad vsn.
    await refusedUpgrade(a, `vsn=2.0.0&token=${token('x', { secret: 'wrong-secret-0123456789abcdef' })}`);
    await refusedUpgrade(a, 'vsn=2.0.0');
    await refusedUpgrade(a, `vsn=9.0.0&token=${token('x')}`);
    // A presence join and a normal close.
    const pres = poster.channel('presence:poster', { device_id: 'd1' });
    await join(pres);
    poster.disconnect();
    await sleep(300);

    const m = await scrape(a);
    const d = (n, l) => sample(m, n, l) - v0(n, l);
    assert.equal(d('parley_comments_accepted_total'), 3);
    assert.equal(d('parley_comments_refused_total', { reason: 'invalid_content' }), 1);
    assert.equal(d('parley_comments_refused_total', { reason: 'content_too_long' }), 1);
    assert.equal(d('parley_comments_refused_total', { reason: 'rate_limit' }), 0);
    assert.equal(d('parley_comment_ack_seconds_count'), 3);
    assert.ok(d('parley_comment_ack_seconds_sum') > 0);
    assert.ok(d('parley_storage_commit_seconds_count') >= 1);
    assert.equal(d('parley_upgrades_refused_total', { reason: 'auth' }), 2);
    assert.equal(d('parley_upgrades_refused_total', { reason: 'vsn' }), 1);
    assert.equal(d('parley_upgrades_refused_total', { reason: 'origin' }), 0);
    assert.equal(d('parley_channel_joins_total', { kind: 'comments' }), 1);
    assert.equal(d('parley_channel_joins_total', { kind: 'presence' }), 1);
    assert.ok(d('parley_websocket_closes_total', { code: '1000' }) >= 1, 'the client close was answered with 1000');
    assert.ok(d('parley_received_bytes_total') > 0);
    assert.ok(d('parley_sent_bytes_total') > 0);
    // b delivered a's comments: three cross-node deliveries measured.
    const mb = await scrape(b);
    assert.equal(sample(mb, 'parley_cluster_delivery_seconds_count') - (sample(mb0, 'parley_cluster_delivery_seconds_count') ?? 0), 3);
    assert.ok(sample(mb, 'parley_cluster_delivery_seconds_bucket', { le: '5' }) >= 3);
    watcher.disconnect();
  });

  it('rate-limit refusals are counted apart from auth and bad input', async () => {
    const n = await startNode({ args: ['--rate-limit', '2/60'] });
    try {
      const s = socket(n, 'rl');
      await connected(s);
      const ch = s.channel('comments:rl', {});
      await join(ch);
      const replies = [];
      for (let i = 0; i < 4; i++) replies.push((await push(ch, 'new_comment', { content: `r${i}` })).status);
      assert.deepEqual(replies, ['ok', 'ok', 'error', 'error']);
      const m = await scrape(n);
      assert.equal(sample(m, 'parley_comments_refused_total', { reason: 'rate_limit' }), 2);
      assert.equal(sample(m, 'parley_comments_refused_total', { reason: 'invalid_content' }), 0);
      assert.equal(sample(m, 'parley_upgrades_refused_total', { reason: 'auth' }), 0);
      s.disconnect();
    } finally { await stopCleanNow(n, assert); }
  });
});
