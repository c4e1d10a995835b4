// Normalisation of etcdctl / gRPC outputs so that two servers which both started empty can be
// compared byte for byte: ids that are random per cluster (cluster_id, member_id, lease ids) and
// the raft term become placeholders, log noise (timestamps, client UUIDs) is dropped from stderr.
// Revisions are kept as they are: both servers start at revision 1, so they must agree.

/** Lease ids captured in a run, by scenario-given name (e.g. L1 -> '7587869786094338052'). */
export type LeaseIds = Map<string, string>;

export interface NormalisedOutput {
  code: number;
  /** Parsed JSON (for -w json and gRPC steps) or the plain text, trailing whitespace trimmed. */
  stdout: unknown;
  /** Meaningful stderr lines: `grpc: rpc error: code = X desc = Y` and etcdctl's `Error: ...`. */
  stderr: string[];
}

const ID_FIELDS = new Set(['cluster_id', 'member_id']);
const LEASE_FIELDS = new Set(['ID', 'lease', 'id']);

/**
 * JSON.parse loses precision above 2^53 and etcdctl prints uint64/int64 ids as bare numbers,
 * so quote every integer literal of 16+ digits before parsing. Only applied to JSON documents;
 * base64 strings cannot contain the `:`/`,`/`[` the pattern needs before the digits.
 */
export function parseJsonExact(text: string): unknown {
  const quoted = text.replace(/([:,[]\s*)(-?\d{16,})(?=\s*[,}\]])/g, '$1"$2"');
  return JSON.parse(quoted);
}

function isZero(v: unknown): boolean {
  return v === 0 || v === '0' || v === null || v === undefined;
}

/** Replaces ids/raft term in a parsed JSON value (recursively). Zero values stay as they are, so
 *  a field etcd leaves out (nested txn headers carry only `revision`) must also be left out. */
export function normaliseJson(value: unknown, leases: LeaseIds): unknown {
  const leaseNames = new Map<string, string>();
  for (const [name, id] of leases) leaseNames.set(id, name);
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object' && !Buffer.isBuffer(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (ID_FIELDS.has(k) && !isZero(x)) out[k] = `<${k}>`;
        else if (k === 'raft_term' && !isZero(x)) out[k] = '<raft_term>';
        else if (LEASE_FIELDS.has(k) && !isZero(x) && (typeof x === 'string' || typeof x === 'number')) {
          const name = leaseNames.get(String(x));
          out[k] = name ? `<lease:${name}>` : x;
        } else out[k] = walk(x);
      }
      return out;
    }
    return v;
  };
  return walk(value);
}

/** Plain (simple) etcdctl output: lease ids are printed as hex (`lease 694d7a3c2b4a1234 granted`). */
export function normaliseText(text: string, leases: LeaseIds): string {
  let out = text.replace(/\s+$/, '');
  for (const [name, id] of leases) {
    const hex = BigInt(id).toString(16);
    // Only where etcdctl prints a lease id (`lease <hex> granted|revoked|...`): a small id such as
    // 1 must not turn every `1` in the output into a placeholder.
    out = out.replace(new RegExp(`\\blease 0*${hex}\\b`, 'g'), `lease <lease:${name}>`);
  }
  return out;
}

/**
 * etcdctl's stderr for a server error looks like
 *   {"level":"warn","ts":"...","caller":"clientv3/retry_interceptor.go:62","msg":"retrying of unary invoker failed",
 *    "target":"endpoint://client-<uuid>/127.0.0.1:port","attempt":0,"error":"rpc error: code = OutOfRange desc = etcdserver: ..."}
 *   Error: etcdserver: mvcc: required revision has been compacted
 * Keep the gRPC status (code and message) from the log line and the `Error:` line; drop the rest of
 * the log line (timestamp, client UUID, port). Consecutive duplicates (client retries) collapse.
 */
export function normaliseStderr(text: string, leases: LeaseIds): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (!line.trim()) continue;
    let kept: string | undefined;
    if (line.startsWith('{')) {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (typeof entry.level === 'string') {
          kept = typeof entry.error === 'string' ? `grpc: ${entry.error}` : undefined;
        } else kept = line;
      } catch {
        kept = line;
      }
    } else kept = line;
    if (kept === undefined) continue;
    kept = normaliseText(kept.replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:<port>'), leases);
    if (out[out.length - 1] !== kept) out.push(kept);
  }
  return out;
}

/**
 * Normalises one etcdctl run. With `json` (the step asked for -w json) the JSON document is parsed;
 * `txn -i` prints its prompts before the document, so leading text lines are kept separately.
 */
export function normaliseCtl(
  r: { stdout: string; stderr: string; code: number },
  leases: LeaseIds,
  json: boolean,
): NormalisedOutput {
  let stdout: unknown = normaliseText(r.stdout, leases);
  if (json) {
    const text = r.stdout.trim();
    const at = text.startsWith('{') ? 0 : text.indexOf('\n{') + 1;
    if (at > 0 || text.startsWith('{')) {
      try {
        const doc = normaliseJson(parseJsonExact(text.slice(at)), leases);
        stdout = at > 0 ? { text: normaliseText(text.slice(0, at), leases), json: doc } : doc;
      } catch {
        // not a JSON document after all: compare as text
      }
    }
  }
  return { code: r.code, stdout, stderr: normaliseStderr(r.stderr, leases) };
}

/** Human-readable rendering for assertion messages: long strings shortened. */
export function render(v: unknown, max = 4000): string {
  const s = JSON.stringify(
    v,
    (_k, x) => {
      if (x && typeof x === 'object' && (x as { type?: string }).type === 'Buffer' && Array.isArray((x as { data?: unknown }).data)) {
        const buf = Buffer.from((x as { data: number[] }).data);
        return `<bytes ${JSON.stringify(buf.length > 200 ? buf.subarray(0, 200).toString('utf8') + '…' : buf.toString('utf8'))}>`;
      }
      if (typeof x === 'string' && x.length > 300) return `${x.slice(0, 300)}…(${x.length} chars)`;
      return x;
    },
    2,
  );
  return s.length > max ? `${s.slice(0, max)}\n…(${s.length} chars)` : s;
}
