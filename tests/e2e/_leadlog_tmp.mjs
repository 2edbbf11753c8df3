import { startNode, sleep } from '/work/main/tests/e2e/lib.mjs';
const n1 = await startNode({ host: '127.0.0.1', name: 'n1' });
const n2 = await startNode({ host: '127.0.0.2', name: 'n2', join: [n1.bus] });
const n3 = await startNode({ host: '127.0.0.3', name: 'n3', join: [n1.bus] });
await sleep(3000);
n1.proc.kill('SIGTERM');
await n1.exit;
await sleep(1500);
n2.proc.kill('SIGTERM'); await n2.exit;
await sleep(500);
n3.proc.kill('SIGTERM'); await n3.exit;
for (const n of [n1, n2, n3]) { console.log('---', n.name); console.log(n.logs.split('\n').filter((l) => /CLU-|BRK-MEMBER/.test(l)).join('\n')); n.cleanup(); }
