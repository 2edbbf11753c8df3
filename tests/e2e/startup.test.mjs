// SPDX-License-Identifier: Apache-2.0
// Startup on damaged data: a data.mdb cut short (a full disk during a copy,
// a bad restore) must stop the node with a clear log line and a non-zero
// exit, never a signal. Before the size check these sizes died of SIGBUS
// (exit 135) without a word.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, statSync, truncateSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, SECRET, startNode, stopCleanNow, socket, connected, join, freePort } from './lib.mjs';
import { postMany, uniq } from './comments_lib.mjs';

// Runs `parley serve` on `data` until it exits (20 s at most).
async function serveOnce(data) {
  const port = await freePort();
  const args = ['serve', '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${await freePort()}`,
    '--cluster-listen', `tcp://127.0.0.1:${await freePort()}`, '--node-name', 'trunc', '--data', data,
    '--jwt-secret', SECRET];
  const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  proc.stdout.on('data', (d) => { logs += d; });
  proc.stderr.on('data', (d) => { logs += d; });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20000);
  const [code, sig] = await new Promise((r) => proc.on('exit', (c, s) => r([c, s])));
  clearTimeout(timer);
  return { code, sig, logs };
}

describe('startup on a damaged store', () => {
  it('a truncated data.mdb exits non-zero with a message, for every size that used to crash', { timeout: 120000 }, async () => {
    const node = await startNode({ args: ['--rate-limit', '1000000/60'], keepData: true });
    const sock = socket(node, 'filler');
    await connected(sock);
    const ch = sock.channel(`comments:${uniq('trunc')}`);
    await join(ch);
    await postMany(ch, 600, { content: (i) => `comment ${i} ${'x'.repeat(400)}` });
    sock.disconnect();
    await stopCleanNow(node, assert);
    const whole = path.join(node.data, 'data.mdb');
    assert.ok(statSync(whole).size > 65536, `data.mdb is only ${statSync(whole).size} bytes`);
    for (const size of [5000, 8192, 12288, 65536]) {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-trunc-'));
      try {
        copyFileSync(whole, path.join(dir, 'data.mdb'));
        truncateSync(path.join(dir, 'data.mdb'), size);
        const r = await serveOnce(dir);
        assert.equal(r.sig, null, `${size} bytes: killed by ${r.sig}\n${r.logs}`);
        assert.equal(r.code, 1, `${size} bytes: exit ${r.code}\n${r.logs}`);
        assert.match(r.logs, /BRK-STARTFAIL.*data\.mdb is truncated/, `${size} bytes\n${r.logs}`);
      } finally { rmSync(dir, { recursive: true, force: true }); }
    }
    rmSync(node.data, { recursive: true, force: true });
  });
});
