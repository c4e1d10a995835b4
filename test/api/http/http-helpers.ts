// Shared by the HTTP tests: requests with node's fetch, and bodies normalised so that real etcd 3.4
// and Plinth, both started empty, can be compared (ids, raft term/index, sizes, ports).
import { parseJsonExact } from '../../compat/normalise';

export interface HttpAnswer {
  status: number;
  contentType: string | null;
  text: string;
  /** The parsed and normalised body when it is JSON, else the text. */
  body: unknown;
}

const ID_FIELDS = new Set(['cluster_id', 'member_id', 'leader', 'ID', 'memberID']);
/** Values that differ between members by nature (raft log layout, engine sizes, a lease's remaining TTL). */
const VOLATILE = new Set(['raft_term', 'raftTerm', 'raftIndex', 'raftAppliedIndex', 'hash']);
/** Engine sizes: left out entirely (the memory engine may report 0, which JSON omits). */
const SIZES = new Set(['dbSize', 'dbSizeInUse']);

export function normalise(v: unknown, port?: number): unknown {
  if (Array.isArray(v)) return v.map((x) => normalise(x, port));
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (SIZES.has(k)) continue;
      if (ID_FIELDS.has(k) && typeof x === 'string') out[k] = `<${k}>`;
      else if (VOLATILE.has(k)) out[k] = `<${k}>`;
      else out[k] = normalise(x, port);
    }
    return out;
  }
  if (typeof v === 'string') {
    // member ids inside status error strings, URLs with their random ports
    return v.replace(/memberID:\d+/g, 'memberID:<id>').replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:<port>');
  }
  return v;
}

export async function call(base: string, method: string, path: string, body?: string | Buffer): Promise<HttpAnswer> {
  const res = await fetch(base + path, { method, body: method === 'GET' || method === 'HEAD' ? undefined : body, redirect: 'manual' });
  const text = await res.text();
  let parsed: unknown = text;
  if (/^\s*[{[]/.test(text)) {
    try {
      parsed = normalise(parseJsonExact(text));
    } catch {
      parsed = text;
    }
  }
  return { status: res.status, contentType: res.headers.get('content-type'), text, body: parsed };
}

/** Reads newline-delimited JSON from a streaming response until n lines or the deadline. */
export async function readLines(res: Response, n: number, timeoutMs = 5000): Promise<string[]> {
  const reader = res.body!.getReader();
  const lines: string[] = [];
  let buf = '';
  const deadline = Date.now() + timeoutMs;
  const dec = new TextDecoder();
  while (lines.length < n && Date.now() < deadline) {
    const r = await Promise.race([
      reader.read(),
      new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), Math.max(1, deadline - Date.now()))),
    ]);
    if (r === 'timeout' || r.done) break;
    buf += dec.decode(r.value, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0 && lines.length < n) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  }
  if (lines.length < n && buf) lines.push(buf);
  await reader.cancel().catch(() => {});
  return lines;
}

export const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

/** A minimal Prometheus text-format parser: series name{labels} -> value, plus each family's type. */
export function parseMetrics(text: string): { types: Map<string, string>; samples: Map<string, number> } {
  const types = new Map<string, string>();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      types.set(name, type);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`bad metrics line: ${line}`);
    const labels = m[2] ? m[2].slice(1, -1).split(/,(?=[a-zA-Z_]+=")/).sort().join(',') : '';
    const v = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    if (Number.isNaN(v) && m[3] !== 'NaN') throw new Error(`bad value: ${line}`);
    samples.set(labels ? `${m[1]}{${labels}}` : m[1], v);
  }
  return { types, samples };
}
