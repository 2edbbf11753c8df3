// SPDX-License-Identifier: Apache-2.0
// deploy/ checked without a Docker engine or kubectl: every manifest parses
// (js-yaml), every flag and PARLEY_* environment twin it uses exists in
// `parley serve --help` (and the preStop command's in its subcommand's
// help), the kustomization's files exist, the pod is locked down (non-root,
// fsGroup, read-only root, no privilege escalation), sized, spread and
// drained on stop, secrets come from the Secret's files, the admin port is
// closed to the outside by the NetworkPolicy, Prometheus finds /metrics,
// the image tag is pinned, and the Dockerfile has its .dockerignore, /data
// and HEALTHCHECK. Then the container's environment, remapped to this
// machine, starts a real node, and the preStop command drains it.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import {
  existsSync, readFileSync, readdirSync, mkdtempSync, mkdirSync, writeFileSync, rmSync, chmodSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yaml from 'js-yaml';
import { BIN, freePort, waitFor, httpGet } from './lib.mjs';
import { parseExposition, sample } from './prom.mjs';

// A port whose next one is free too, on every address.
async function freePortAndNext() {
  const canListen = (port) => new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '0.0.0.0', () => srv.close(() => resolve(true)));
  });
  for (;;) {
    const port = await freePort('0.0.0.0');
    if (port < 65535 && await canListen(port) && await canListen(port + 1)) return port;
  }
}

const ROOT = path.resolve(import.meta.dirname, '../..');
const K8S = path.join(ROOT, 'deploy/kubernetes');

function run(args, env = process.env) {
  return new Promise((resolve) => {
    const p = spawn(BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('exit', (code) => resolve({ code, out, err }));
  });
}

// Flags and env twins `parley serve --help` documents.
async function serveFlags() {
  const r = await run(['serve', '--help']);
  assert.equal(r.code, 0);
  const flags = new Set();
  const envs = new Set();
  for (const m of r.out.matchAll(/^ {2}--([a-z0-9-]+)\s+(PARLEY_[A-Z0-9_]+)\s/gm)) {
    flags.add(m[1]);
    envs.add(m[2]);
  }
  assert.ok(flags.size > 20, r.out);
  return { flags, envs };
}

const docs = {};
let all = [];
const byKind = (kind) => all.filter((d) => d.kind === kind);
let sts;
let pod;
let ctr;

before(() => {
  for (const f of readdirSync(K8S).filter((x) => x.endsWith('.yaml'))) {
    docs[f] = yaml.loadAll(readFileSync(path.join(K8S, f), 'utf8')).filter(Boolean);
    all.push(...docs[f].filter((d) => d.kind !== 'Kustomization'));
  }
  [sts] = byKind('StatefulSet');
  pod = sts.spec.template.spec;
  [ctr] = pod.containers;
});

describe('deploy/kubernetes manifests', () => {
  it('parse, and each object has apiVersion, kind and a name', () => {
    assert.ok(Object.keys(docs).length >= 6, Object.keys(docs).join(','));
    for (const d of all) {
      assert.ok(d.apiVersion && d.kind && d.metadata?.name, JSON.stringify(d).slice(0, 200));
    }
    const kinds = new Set(all.map((d) => d.kind));
    for (const k of ['StatefulSet', 'Service', 'PodDisruptionBudget', 'NetworkPolicy', 'ServiceMonitor']) {
      assert.ok(kinds.has(k), `no ${k}`);
    }
  });

  it('kustomization.yaml lists files that exist and pins the image', () => {
    const [k] = docs['kustomization.yaml'];
    assert.equal(k.kind, 'Kustomization');
    for (const r of k.resources) assert.ok(existsSync(path.join(K8S, r)), r);
    const inResources = new Set(k.resources);
    for (const f of Object.keys(docs)) {
      if (f !== 'kustomization.yaml' && f !== 'servicemonitor.yaml') assert.ok(inResources.has(f), `${f} not in resources`);
    }
    // The image: a pinned tag in the StatefulSet, the same in the override.
    const [name, tag] = ctr.image.split(':');
    assert.ok(tag && tag !== 'latest', `image ${ctr.image} is not pinned`);
    const img = k.images.find((i) => i.name === name);
    assert.ok(img, `no images entry for ${name}`);
    assert.equal(img.newTag, tag);
    assert.notEqual(img.newTag, 'latest');
    // The Secret comes from files make-secrets.sh creates (never committed).
    const gen = k.secretGenerator.find((g) => g.name === 'parley-secrets');
    const script = readFileSync(path.join(K8S, 'make-secrets.sh'), 'utf8');
    for (const f of gen.files) {
      assert.match(f, /^secrets\//);
      assert.ok(script.includes(f), `make-secrets.sh does not create ${f}`);
    }
    assert.match(readFileSync(path.join(K8S, '.gitignore'), 'utf8'), /^secrets\/$/m);
  });

  it('every PARLEY_* variable and flag exists in `parley serve --help`', async () => {
    const { flags, envs } = await serveFlags();
    const used = [];
    for (const c of [...pod.containers, ...(pod.initContainers || [])]) {
      for (const e of c.env || []) {
        if (e.name.startsWith('PARLEY_')) {
          used.push(e.name);
          assert.ok(envs.has(e.name), `${e.name} is not an environment twin of any flag`);
        }
      }
      for (const a of [...(c.args || []), ...(c.command || [])]) {
        const m = /^--([a-z0-9-]+)/.exec(a);
        if (m) assert.ok(flags.has(m[1]), `--${m[1]} is not a serve flag`);
      }
      assert.deepEqual(c.args, ['serve']);
    }
    // Commented-out twins are checked too, so enabling them works.
    const text = readFileSync(path.join(K8S, 'statefulset.yaml'), 'utf8');
    for (const m of text.matchAll(/\b(PARLEY_[A-Z0-9_]+)/g)) {
      assert.ok(envs.has(m[1]), `${m[1]} (statefulset.yaml) is not a flag's twin`);
    }
    const docker = readFileSync(path.join(ROOT, 'deploy/Dockerfile'), 'utf8');
    for (const m of docker.matchAll(/\b(PARLEY_[A-Z0-9_]+)=/g)) {
      assert.ok(envs.has(m[1]), `${m[1]} (Dockerfile) is not a flag's twin`);
    }
    assert.ok(used.length >= 10, used.join(','));
  });

  it('the preStop drain uses flags its subcommand has', async () => {
    const cmd = ctr.lifecycle.preStop.exec.command;
    assert.equal(cmd[0], 'parley');
    assert.equal(cmd[1], 'drain');
    assert.ok(cmd.includes('--wait'));
    const help = await run([cmd[1], '--help']);
    assert.equal(help.code, 0);
    for (const a of cmd.slice(2).filter((x) => x.startsWith('--'))) {
      assert.ok(help.out.includes(`${a} `), `${a} is not a flag of parley ${cmd[1]}`);
    }
    const t = Number(cmd[cmd.indexOf('--timeout') + 1]);
    const drain = Number(ctr.env.find((e) => e.name === 'PARLEY_DRAIN_TIMEOUT')?.value ?? 10);
    assert.ok(t > drain, `--timeout ${t} must cover PARLEY_DRAIN_TIMEOUT ${drain}`);
    assert.ok(pod.terminationGracePeriodSeconds > t, 'grace period shorter than the preStop wait');
  });

  it('the pod runs locked down, sized and spread', () => {
    const sc = pod.securityContext;
    assert.equal(sc.runAsNonRoot, true);
    assert.ok(sc.runAsUser > 0 && sc.runAsGroup > 0);
    assert.equal(sc.fsGroup, sc.runAsGroup, 'fsGroup makes the data volume writable');
    assert.equal(sc.seccompProfile.type, 'RuntimeDefault');
    const cs = ctr.securityContext;
    assert.equal(cs.readOnlyRootFilesystem, true);
    assert.equal(cs.allowPrivilegeEscalation, false);
    assert.deepEqual(cs.capabilities.drop, ['ALL']);
    // With a read-only root, what parley writes is on volumes.
    const mounts = Object.fromEntries(ctr.volumeMounts.map((m) => [m.mountPath, m]));
    assert.ok(mounts['/data'] && mounts['/tmp'], 'no writable /data and /tmp');
    assert.equal(ctr.env.find((e) => e.name === 'PARLEY_DATA').value, '/data');
    assert.ok(ctr.resources.requests.cpu && ctr.resources.requests.memory && ctr.resources.limits.memory);
    const keys = pod.topologySpreadConstraints.map((t) => t.topologyKey);
    assert.ok(keys.includes('kubernetes.io/hostname'));
    for (const t of pod.topologySpreadConstraints) {
      assert.deepEqual(t.labelSelector.matchLabels, sts.spec.selector.matchLabels);
    }
    assert.equal(sts.spec.template.metadata.annotations['prometheus.io/scrape'], 'true');
    const admin = ctr.ports.find((p) => p.name === 'admin');
    assert.equal(sts.spec.template.metadata.annotations['prometheus.io/port'], String(admin.containerPort));
    assert.equal(sts.spec.template.metadata.annotations['prometheus.io/path'], '/metrics');
    assert.equal(ctr.readinessProbe.httpGet.path, '/readyz');
    assert.equal(ctr.livenessProbe.httpGet.path, '/healthz');
  });

  it('secrets are files from the Secret, and a non-loopback admin port has a token', () => {
    const env = Object.fromEntries(ctr.env.map((e) => [e.name, e]));
    const vol = pod.volumes.find((v) => v.secret?.secretName === 'parley-secrets');
    assert.ok(vol, 'no volume from the Secret parley-secrets');
    const mount = ctr.volumeMounts.find((m) => m.name === vol.name);
    assert.equal(mount.readOnly, true);
    const [k] = docs['kustomization.yaml'];
    const keys = k.secretGenerator.find((g) => g.name === 'parley-secrets').files.map((f) => path.basename(f));
    for (const n of ['PARLEY_JWT_SECRET_FILE', 'PARLEY_ADMIN_TOKEN_FILE']) {
      assert.ok(env[n], `${n} not set`);
      assert.equal(path.dirname(env[n].value), mount.mountPath, n);
      assert.ok(keys.includes(path.basename(env[n].value)), `${n}: no such key in the Secret`);
    }
    assert.ok(!env.PARLEY_JWT_SECRET && !env.PARLEY_FIREBASE_AUTH, 'a secret in plain env');
    assert.ok(!/127\.|localhost/.test(env.PARLEY_ADMIN.value) ? env.PARLEY_ADMIN_TOKEN_FILE : true);
    // Secret files are not world-readable (parley warns about that).
    assert.equal(vol.secret.defaultMode & 0o007, 0);
  });

  it('Services point at named container ports; the ServiceMonitor at the admin port', () => {
    const names = new Set(ctr.ports.map((p) => p.name));
    for (const s of byKind('Service')) {
      assert.deepEqual(s.spec.selector, sts.spec.selector.matchLabels, s.metadata.name);
      for (const p of s.spec.ports) assert.ok(names.has(p.targetPort), `${s.metadata.name}: targetPort ${p.targetPort}`);
    }
    const headless = byKind('Service').find((s) => s.metadata.name === sts.spec.serviceName);
    assert.equal(headless.spec.clusterIP, 'None');
    assert.equal(headless.spec.publishNotReadyAddresses, true);
    const [sm] = byKind('ServiceMonitor');
    assert.deepEqual(sm.spec.selector.matchLabels, headless.metadata.labels);
    const ep = sm.spec.endpoints[0];
    assert.ok(headless.spec.ports.some((p) => p.name === ep.port && p.targetPort === 'admin'));
    assert.equal(ep.path, '/metrics');
    const [pdb] = byKind('PodDisruptionBudget');
    assert.deepEqual(pdb.spec.selector.matchLabels, sts.spec.selector.matchLabels);
  });

  it('the NetworkPolicy keeps the admin and bus ports inside the cluster', () => {
    const [np] = byKind('NetworkPolicy');
    assert.deepEqual(np.spec.podSelector.matchLabels, sts.spec.selector.matchLabels);
    assert.ok(np.spec.policyTypes.includes('Ingress'));
    const port = (p) => ctr.ports.find((x) => x.name === p).containerPort;
    for (const rule of np.spec.ingress) {
      const ports = (rule.ports || []).map((p) => p.port);
      if (!rule.from) {
        // An open rule may only open the WebSocket port.
        assert.deepEqual(ports, [port('ws')], 'a rule without `from` opens more than the WebSocket port');
      }
      assert.ok(ports.length > 0, 'a rule without ports opens every port');
    }
    const adminRules = np.spec.ingress.filter((r) => r.ports.some((p) => p.port === port('admin')));
    assert.ok(adminRules.length > 0 && adminRules.every((r) => r.from?.length), 'admin port open to all');
    const busRules = np.spec.ingress.filter((r) => r.ports.some((p) => p.port === port('bus')));
    assert.ok(busRules.every((r) => r.from.every((f) => f.podSelector)), 'bus port open beyond parley pods');
  });
});

describe('deploy/Dockerfile', () => {
  it('has a .dockerignore, a /data owned by the non-root user, and a HEALTHCHECK', () => {
    const df = readFileSync(path.join(ROOT, 'deploy/Dockerfile'), 'utf8');
    const ignore = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const p of ['.git', 'build', 'build-*', '**/node_modules', 'deploy/kubernetes/secrets']) assert.ok(ignore.includes(p), `.dockerignore lacks ${p}`);
    assert.match(df, /^HEALTHCHECK .*\n?.*\/healthz/m);
    const user = /^USER (\d+):(\d+)$/m.exec(df);
    assert.ok(user, 'USER is not numeric uid:gid');
    assert.equal(Number(user[1]), pod.securityContext.runAsUser);
    assert.equal(Number(user[2]), pod.securityContext.runAsGroup);
    assert.match(df, /mkdir -p \/data && chown parley:parley \/data/);
    assert.match(df, /useradd -r -u 10001/);
    assert.match(df, /^VOLUME \/data$/m);
    assert.match(df, /-Dgit_describe=/);
  });
});

describe('the container environment on this machine', () => {
  it('starts a node that serves, reads its secret files, and drains through preStop', { timeout: 60000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-pod-'));
    const secrets = path.join(dir, 'secrets');
    mkdirSync(secrets);
    for (const [f, v] of [['jwt_keys', 'a'.repeat(64)], ['admin_token', 'b'.repeat(64)], ['firebase_auth', 'unused']]) {
      writeFileSync(path.join(secrets, f), `${v}\n`);
      chmodSync(path.join(secrets, f), 0o440);
    }
    // The addressed path listens on the bus port + 1 (derived, as in the pod).
    const [ws, admin, bus] = [await freePort(), await freePort(), await freePortAndNext()];
    const remap = (v) => v
      .replace('$(POD_NAME)', 'parley-0').replace('$(POD_IP)', '127.0.0.1')
      .replace(/^\/data$/, path.join(dir, 'data')).replace('/etc/parley/secrets', secrets)
      .replace('0.0.0.0:4000', `127.0.0.1:${ws}`).replace('0.0.0.0:4001', `0.0.0.0:${admin}`)
      .replace(':4002', `:${bus}`);
    const env = { PATH: process.env.PATH, ASAN_OPTIONS: process.env.ASAN_OPTIONS || '', LSAN_OPTIONS: process.env.LSAN_OPTIONS || '' };
    for (const e of ctr.env) {
      if (!e.name.startsWith('PARLEY_')) continue;
      env[e.name] = remap(e.value);
    }
    env.PARLEY_JOIN = ''; // no DNS for the headless Service here
    const p = spawn(BIN, ctr.args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let logs = '';
    p.stdout.on('data', (d) => { logs += d; });
    p.stderr.on('data', (d) => { logs += d; });
    const exited = new Promise((r) => p.on('exit', (code, sig) => r({ code, sig })));
    try {
      await waitFor(async () => (await httpGet(`http://127.0.0.1:${ws}/readyz`)).status === 200, { what: 'pod ready' })
        .catch((e) => { throw new Error(`${e.message}\nexit: ${p.exitCode ?? p.signalCode}\n${logs}`); });
      // JSON logs, the secret files loaded, the token required.
      const start = logs.split('\n').map((l) => { try { return JSON.parse(l); } catch { return null; } }).find((l) => l?.id === 'BRK-SECRETS');
      assert.match(start.msg, /JWT secrets loaded from .*jwt_keys/);
      assert.equal((await fetch(`http://127.0.0.1:${admin}/v1/members`)).status, 401);
      const m = parseExposition(await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text());
      assert.equal(sample(m, 'parley_ready'), 1);
      // The preStop command, as the kubelet runs it in the container.
      const cmd = ctr.lifecycle.preStop.exec.command.map((a) => a.replace('127.0.0.1:4001', `127.0.0.1:${admin}`));
      const stop = await run(cmd.slice(1), env);
      assert.equal(stop.code, 0, stop.err);
      assert.deepEqual(await exited, { code: 0, sig: null });
    } finally {
      p.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
