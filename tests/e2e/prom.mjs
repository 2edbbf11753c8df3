// SPDX-License-Identifier: Apache-2.0
// A strict parser of the Prometheus text exposition format (version 0.0.4),
// written from the format's description, to check what /metrics serves:
// metric and label names, escaped label values, Go float values, HELP and
// TYPE at most once per family and before its samples, families never
// interleaved, no series twice, histogram buckets cumulative with le="+Inf"
// equal to _count, and counters named _total. Throws on the first
// violation with its line number.

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s, where) {
  if (s === 'NaN') return NaN;
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (!/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(s)) throw new Error(`${where}: bad value "${s}"`);
  return Number(s);
}

// Parses `{a="x",b="y\"z"}` starting at s[i] === '{'; returns [labels, next index].
function parseLabels(s, i, where) {
  const labels = {};
  i++;
  for (;;) {
    if (s[i] === '}') return [labels, i + 1];
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(s.slice(i));
    if (!m) throw new Error(`${where}: bad label name at "${s.slice(i, i + 20)}"`);
    const name = m[0];
    i += name.length;
    if (s[i] !== '=' || s[i + 1] !== '"') throw new Error(`${where}: expected =" after label ${name}`);
    i += 2;
    let v = '';
    for (;;) {
      const c = s[i];
      if (c === undefined) throw new Error(`${where}: unterminated label value`);
      if (c === '"') { i++; break; }
      if (c === '\\') {
        const e = s[i + 1];
        if (e === '\\') v += '\\'; else if (e === '"') v += '"'; else if (e === 'n') v += '\n';
        else throw new Error(`${where}: bad escape \\${e}`);
        i += 2;
        continue;
      }
      if (c === '\n') throw new Error(`${where}: raw newline in label value`);
      v += c;
      i++;
    }
    if (Object.hasOwn(labels, name)) throw new Error(`${where}: label ${name} twice`);
    labels[name] = v;
    if (s[i] === ',') { i++; continue; }
    if (s[i] !== '}') throw new Error(`${where}: expected , or } after label ${name}`);
  }
}

// The family a sample name belongs to, given the declared types.
function familyOf(name, types) {
  for (const suf of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suf)) {
      const base = name.slice(0, -suf.length);
      if (types.get(base) === 'histogram' || types.get(base) === 'summary') return base;
    }
  }
  return name;
}

// Returns Map(family -> {name, type, help, samples: [{name, labels, value}]}).
export function parseExposition(text) {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const fams = new Map();
  const types = new Map();
  const seen = new Set();
  const closed = new Set();
  let current = null;
  const fam = (name) => {
    if (!fams.has(name)) fams.set(name, { name, type: 'untyped', help: null, samples: [] });
    return fams.get(name);
  };
  const enter = (name, where) => {
    if (current !== name) {
      if (closed.has(name)) throw new Error(`${where}: family ${name} interleaved with others`);
      if (current !== null) closed.add(current);
      current = name;
    }
  };
  text.slice(0, -1).split('\n').forEach((line, idx) => {
    const where = `line ${idx + 1}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a plain comment
      const [, kind, name, rest] = m;
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name ${name}`);
      enter(name, where);
      const f = fam(name);
      if (kind === 'HELP') {
        if (f.help !== null) throw new Error(`${where}: second HELP for ${name}`);
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ''))) throw new Error(`${where}: bad escape in HELP`);
        f.help = rest.replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      } else {
        if (types.has(name)) throw new Error(`${where}: second TYPE for ${name}`);
        if (f.samples.length) throw new Error(`${where}: TYPE for ${name} after its samples`);
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type ${rest}`);
        types.set(name, rest);
        f.type = rest;
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    if (!m) throw new Error(`${where}: bad sample "${line}"`);
    const name = m[1];
    let i = name.length;
    let labels = {};
    if (line[i] === '{') [labels, i] = parseLabels(line, i, where);
    if (line[i] !== ' ') throw new Error(`${where}: expected a space before the value`);
    const parts = line.slice(i + 1).split(' ');
    if (parts.length > 2) throw new Error(`${where}: junk after the value`);
    const value = parseValue(parts[0], where);
    if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new Error(`${where}: bad timestamp`);
    const family = familyOf(name, types);
    enter(family, where);
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (seen.has(key)) throw new Error(`${where}: series ${key} twice`);
    seen.add(key);
    fam(family).samples.push({ name, labels, value });
  });
  for (const f of fams.values()) checkFamily(f);
  return fams;
}

function checkFamily(f) {
  if (f.type === 'counter') {
    if (!f.name.endsWith('_total')) throw new Error(`counter ${f.name} does not end in _total`);
    for (const s of f.samples) {
      if (!(s.value >= 0)) throw new Error(`counter ${s.name} is ${s.value}`);
    }
  }
  if (f.type !== 'histogram') return;
  // Group by labels other than le.
  const groups = new Map();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const k = JSON.stringify(Object.entries(rest).sort());
    if (!groups.has(k)) groups.set(k, { buckets: [], sum: null, count: null });
    const g = groups.get(k);
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${s.name} without le`);
      g.buckets.push([parseValue(le, s.name), s.value]);
    } else if (s.name === `${f.name}_sum`) g.sum = s.value;
    else if (s.name === `${f.name}_count`) g.count = s.value;
    else throw new Error(`${s.name} in histogram ${f.name}`);
  }
  for (const [k, g] of groups) {
    if (g.sum === null || g.count === null) throw new Error(`histogram ${f.name}${k}: no _sum or _count`);
    let prevLe = -Infinity;
    let prev = 0;
    for (const [le, v] of g.buckets) {
      if (!(le > prevLe)) throw new Error(`histogram ${f.name}${k}: le ${le} not increasing`);
      if (v < prev) throw new Error(`histogram ${f.name}${k}: bucket le=${le} ${v} < ${prev}`);
      prevLe = le;
      prev = v;
    }
    if (prevLe !== Infinity) throw new Error(`histogram ${f.name}${k}: no le="+Inf" bucket`);
    if (prev !== g.count) throw new Error(`histogram ${f.name}${k}: +Inf bucket ${prev} != _count ${g.count}`);
  }
}

// The value of one series (family name and labels to match), or undefined.
export function sample(fams, name, labels = {}) {
  for (const f of fams.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return undefined;
}
