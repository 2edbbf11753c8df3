import { after } from 'node:test';
import '/work/main/tests/e2e/protocol.test.mjs';
const orig = global.setTimeout;
global.setTimeout = function (fn, ms, ...a) { const t = orig(fn, ms, ...a); if (ms > 1000) { console.log('T', ms, new Error().stack.split('\n').slice(2,5).join(' | ')); } return t; };
