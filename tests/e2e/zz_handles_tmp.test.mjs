import { after } from 'node:test';
import '/work/main/tests/e2e/protocol.test.mjs';
after(async () => {
  await new Promise(r => setTimeout(r, 1000));
  for (const h of process._getActiveHandles()) console.log('H', h.constructor.name, h._peername || h.remotePort || '', h._idleTimeout || '');
  for (const r of process.getActiveResourcesInfo()) console.log('R', r);
});
