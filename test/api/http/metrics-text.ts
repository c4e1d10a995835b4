// A strict reader of the Prometheus text exposition format (version 0.0.4), for the /metrics tests: every
// sample belongs to the family its # TYPE line declared (a histogram's _bucket, _sum and _count), label
// values are quoted and escaped, values are Go floats; anything else throws.

export interface Sample {
  /** The sample's name (a histogram's name_bucket, name_sum, name_count). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: string;
  samples: Sample[];
}

export interface Exposition {
  families: Map<string, Family>;
  /** The value of one sample, by name{label="v",...} with labels in any order; undefined if absent. */
  value(key: string): number | undefined;
  /** The sum of a sample name's values over the series whose labels include these. */
  sum(name: string, labels?: Record<string, string>): number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function parseLabels(text: string, line: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(text.slice(i));
    if (!m) throw new Error(`bad label in: ${line}`);
    i += m[0].length;
    let v = '';
    for (;;) {
      if (i >= text.length) throw new Error(`unterminated label value in: ${line}`);
      const c = text[i++];
      if (c === '"') break;
      if (c === '\\') {
        const n = text[i++];
        if (n === 'n') v += '\n';
        else if (n === '\\' || n === '"') v += n;
        else throw new Error(`bad escape in: ${line}`);
      } else v += c;
    }
    if (m[1] in out) throw new Error(`label ${m[1]} twice in: ${line}`);
    out[m[1]] = v;
    if (i < text.length) {
      if (text[i] !== ',') throw new Error(`expected , in: ${line}`);
      i++;
    }
  }
  return out;
}

function parseValue(s: string, line: string): number {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`bad value in: ${line}`);
  return Number(s);
}

export function key(name: string, labels: Record<string, string>): string {
  const ls = Object.keys(labels).sort().map((k) => `${k}="${labels[k]}"`);
  return ls.length ? `${name}{${ls.join(',')}}` : name;
}

export function parseExposition(text: string): Exposition {
  const families = new Map<string, Family>();
  const byKey = new Map<string, number>();
  let current: Family | undefined;
  const helps = new Map<string, string>();
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('exposition does not end with a newline');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) {
      const rest = line.slice(7);
      const sp = rest.indexOf(' ');
      helps.set(rest.slice(0, sp), rest.slice(sp + 1).replace(/\\n/g, '\n').replace(/\\\\/g, '\\'));
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [name, type] = line.slice(7).split(' ');
      if (!NAME.test(name) || !['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type)) throw new Error(`bad TYPE line: ${line}`);
      if (families.has(name)) throw new Error(`family ${name} declared twice`);
      current = { name, type, help: helps.get(name) ?? '', samples: [] };
      families.set(name, current);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const [, name, labelText, valueText] = m;
    if (!current) throw new Error(`sample before any TYPE: ${line}`);
    const suffixes = current.type === 'histogram' ? ['_bucket', '_sum', '_count'] : current.type === 'summary' ? ['', '_sum', '_count'] : [''];
    if (!suffixes.some((s) => name === current!.name + s)) throw new Error(`sample ${name} outside its family ${current.name}`);
    const labels = labelText ? parseLabels(labelText, line) : {};
    if (name.endsWith('_bucket') && current.type === 'histogram' && !('le' in labels)) throw new Error(`bucket without le: ${line}`);
    const value = parseValue(valueText, line);
    current.samples.push({ name, labels, value });
    const k = key(name, labels);
    if (byKey.has(k)) throw new Error(`sample ${k} twice`);
    byKey.set(k, value);
  }
  return {
    families,
    value(k: string) {
      const m = /^([^{]+)(?:\{(.*)\})?$/.exec(k)!;
      return byKey.get(key(m[1], m[2] ? parseLabels(m[2], k) : {}));
    },
    sum(name: string, labels: Record<string, string> = {}) {
      const fam = families.get(name.replace(/_(bucket|sum|count)$/, '')) ?? families.get(name);
      if (!fam) return 0;
      return fam.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
    },
  };
}
