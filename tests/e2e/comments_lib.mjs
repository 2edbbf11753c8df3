// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the comments and crash suites: posting many comments with
// several pushes in flight, and reading a video's whole history back through
// the public protocol (join + list_comments), as a client would.
import { join, push } from './lib.mjs';

export const uniq = (p) => `${p}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;

// Posts `n` comments on a joined channel, keeping `inFlight` pushes
// outstanding. content(i) gives the i-th text. Resolves with the acks
// [{i, id, content}] in the order they arrived; rejects on the first error.
export function postMany(channel, n, { inFlight = 20, content = (i) => `comment ${i}`, timeout = 10000, onAck = null } = {}) {
  return new Promise((resolve, reject) => {
    const acks = [];
    let next = 0, done = 0, failed = false;
    const one = () => {
      if (failed || next >= n) return;
      const i = next++;
      const text = content(i);
      channel.push('new_comment', { content: text }, timeout)
        .receive('ok', (r) => {
          acks.push({ i, id: r.id, content: text });
          if (onAck) onAck(acks[acks.length - 1]);
          if (++done === n) resolve(acks); else one();
        })
        .receive('error', (r) => { failed = true; reject(new Error(`comment ${i} refused: ${JSON.stringify(r)}`)); })
        .receive('timeout', () => { failed = true; reject(new Error(`comment ${i} timed out`)); });
    };
    if (n === 0) { resolve(acks); return; }
    for (let k = 0; k < Math.min(inFlight, n); k++) one();
  });
}

// Reads the whole history of a channel's video, oldest first, by joining
// (limit 200) and paging back with list_comments before the oldest seen.
// Returns {comments, pages} where pages are the sizes of every reply.
// The channel must not be joined yet.
export async function readHistory(channel, { limit = 200 } = {}) {
  const first = await join(channel);
  const pages = [first.comments.length];
  let all = first.comments;
  let more = first.has_more;
  while (more) {
    const r = await push(channel, 'list_comments', { before: all[0].id, limit });
    if (r.status !== 'ok') throw new Error(`list_comments refused: ${JSON.stringify(r.response)}`);
    if (r.response.comments.length === 0) throw new Error('has_more was true but the next page is empty');
    pages.push(r.response.comments.length);
    all = [...r.response.comments, ...all];
    more = r.response.has_more;
  }
  return { comments: all, pages };
}

// Asserts that ids are strictly increasing (and so unique).
export function strictlyIncreasing(ids) {
  for (let k = 1; k < ids.length; k++) {
    if (!(ids[k - 1] < ids[k])) return `ids[${k - 1}]=${ids[k - 1]} !< ids[${k}]=${ids[k]}`;
  }
  return null;
}

// As lib.mjs stopClean (SIGTERM, exit 0 asserted, data removed) but without
// leaving a 20 s timer behind: node.stop's unref'd-less race timer keeps the
// test file's process alive for 20 s after the last stop.
export async function stopCleanFast(node, assert, { keepData = false } = {}) {
  if (!node.exited) node.proc.kill('SIGTERM');
  let t;
  const res = await Promise.race([node.exit, new Promise((r) => { t = setTimeout(() => r(null), 20000); })]);
  clearTimeout(t);
  if (!res) { node.proc.kill('SIGKILL'); await node.exit; }
  assert.deepEqual(res, { code: 0, sig: null }, `node ${node.name} exit\n${node.logs.slice(-3000)}`);
  if (!keepData) node.cleanup();
}
