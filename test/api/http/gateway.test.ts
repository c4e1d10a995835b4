// The JSON gateway, /health and /version on the client port: the same HTTP requests, in order, to real
// etcd 3.4 and to Plinth on each engine; status, content type and body (normalised: ids, raft
// term/index, sizes) must be equal. Bad input (malformed JSON, wrong types, huge bodies) must get
// etcd's error and store nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETCD_AVAILABLE, startEtcd, startPlinth, type RunningServer } from '../../helpers/servers';
import { b64, call, readLines, normalise, type HttpAnswer } from './http-helpers';

interface Step {
  name: string;
  method?: string;
  path: string;
  /** A string, or built from what earlier steps captured on the same server (e.g. a lease id). */
  body?: string | ((ctx: Ctx) => string);
  /** Keeps a field of the (raw, unnormalised) answer under a name for later steps. */
  capture?: [name: string, field: string];
  /**
   * Known differences of the gRPC services themselves (the gateway only renders what they answer):
   * these paths are removed from both bodies before comparing. See the README's differences table.
   */
  ignore?: string[];
}

type Ctx = Record<string, string>;

function drop(body: unknown, paths: string[] = []): unknown {
  const copy = JSON.parse(JSON.stringify(body));
  for (const p of paths) {
    const parts = p.split('.');
    let o = copy;
    for (const k of parts.slice(0, -1)) o = o?.[k];
    if (o && typeof o === 'object') delete o[parts[parts.length - 1]];
  }
  return copy;
}

const j = (o: unknown) => JSON.stringify(o);
const big = (n: number) => j({ key: b64('big'), value: Buffer.alloc(n, 'x').toString('base64') });

const STEPS: Step[] = [
  { name: 'version', method: 'GET', path: '/version' },
  { name: 'health', method: 'GET', path: '/health' },
  { name: 'health with a query', method: 'GET', path: '/health?serializable=true' },
  { name: 'health by POST', method: 'POST', path: '/health' },
  { name: 'version by POST', method: 'POST', path: '/version' },
  { name: 'an unknown path', method: 'GET', path: '/nothing' },
  { name: 'v3alpha is gone in 3.4', path: '/v3alpha/kv/range', body: j({ key: b64('a') }) },
  { name: 'an unknown gateway path', path: '/v3/kv/nothing', body: '{}' },
  { name: 'a gateway path by GET', method: 'GET', path: '/v3/kv/range' },
  { name: 'CORS preflight', method: 'OPTIONS', path: '/v3/kv/range' },
  { name: 'range on an empty store', path: '/v3/kv/range', body: j({ key: b64('foo') }) },
  { name: 'put', path: '/v3/kv/put', body: j({ key: b64('foo'), value: b64('bar') }) },
  { name: 'put with prev_kv', path: '/v3/kv/put', body: j({ key: b64('foo'), value: b64('baz'), prev_kv: true }) },
  { name: 'put, camelCase name', path: '/v3/kv/put', body: j({ key: b64('foo2'), value: b64('v2'), prevKv: true }) },
  { name: 'range', path: '/v3/kv/range', body: j({ key: b64('foo') }) },
  { name: 'range, prefix, descending, limit as string', path: '/v3/kv/range',
    body: j({ key: b64('foo'), range_end: b64('fop'), sort_order: 'DESCEND', sort_target: 'KEY', limit: '1' }) },
  { name: 'range, enums as numbers', path: '/v3/kv/range', body: j({ key: b64('foo'), range_end: b64('fop'), sort_order: 2, sort_target: 3 }) },
  { name: 'range, count_only', path: '/v3/kv/range', body: j({ key: b64('\0'), range_end: b64('\0'), count_only: true }) },
  { name: 'range, keys_only', path: '/v3/kv/range', body: j({ key: b64('foo'), keysOnly: true }) },
  { name: 'range, unknown field ignored', path: '/v3/kv/range', body: j({ key: b64('foo'), bogus: 1 }) },
  { name: 'range, trailing data ignored', path: '/v3/kv/range', body: j({ key: b64('foo') }) + '{"x":' },
  { name: 'range, null', path: '/v3/kv/range', body: 'null' },
  { name: 'range, empty body', path: '/v3/kv/range', body: '' },
  { name: 'range, historical revision', path: '/v3/kv/range', body: j({ key: b64('foo'), revision: 2 }) },
  { name: 'range, future revision', path: '/v3/kv/range', body: j({ key: b64('foo'), revision: 100 }) },
  { name: 'txn', path: '/v3/kv/txn', body: j({
    compare: [{ key: b64('foo'), result: 'EQUAL', target: 'VALUE', value: b64('baz') }],
    success: [{ request_put: { key: b64('foo'), value: b64('qux') } }, { requestRange: { key: b64('foo') } }],
    failure: [{ request_range: { key: b64('foo') } }],
  }) },
  { name: 'txn, failing compare', path: '/v3/kv/txn', body: j({
    compare: [{ key: b64('foo'), result: 0, target: 3, value: b64('nope') }],
    success: [{ request_delete_range: { key: b64('foo') } }],
    failure: [{ request_range: { key: b64('foo') } }],
  }) },
  { name: 'txn, compare on version (int64 as number)', path: '/v3/kv/txn', body: j({
    compare: [{ key: b64('foo'), result: 'GREATER', target: 'VERSION', version: 1 }],
    success: [{ request_txn: { success: [{ request_range: { key: b64('foo2') } }] } }],
  }) },
  { name: 'txn, duplicate key', path: '/v3/kv/txn', body: j({
    success: [{ request_put: { key: b64('d'), value: b64('1') } }, { request_put: { key: b64('d'), value: b64('2') } }],
  }) },
  { name: 'deleterange with prev_kv', path: '/v3/kv/deleterange', body: j({ key: b64('foo2'), prev_kv: true }) },
  { name: 'compaction', path: '/v3/kv/compaction', body: j({ revision: 3 }) },
  { name: 'range at a compacted revision', path: '/v3/kv/range', body: j({ key: b64('foo'), revision: 2 }) },
  { name: 'compaction, future revision', path: '/v3/kv/compaction', body: j({ revision: 1000 }) },
  { name: 'v3beta prefix', path: '/v3beta/kv/range', body: j({ key: b64('foo') }) },
  // etcd's Cluster header has no revision; the test helper gives etcd a peer URL, Plinth none.
  { name: 'member list', path: '/v3/cluster/member/list', body: '{}', ignore: ['members.0.peerURLs'] },
  { name: 'status', path: '/v3/maintenance/status', body: '{}' },
  { name: 'hash (Hash, not HashKV, owns the path)', path: '/v3/maintenance/hash', body: '{}' },
  // etcd 3.4 answers Alarm and Defragment without a header (and so does Plinth).
  { name: 'alarm list', path: '/v3/maintenance/alarm', body: j({ action: 'GET' }) },
  { name: 'defragment', path: '/v3/maintenance/defragment', body: '{}' },
  { name: 'move leader to a member that is not there', path: '/v3/maintenance/transfer-leadership', body: j({ targetID: '5' }) },

  // bad input: etcd's words and status, nothing stored
  { name: 'malformed JSON (truncated)', path: '/v3/kv/put', body: '{"key":' },
  { name: 'malformed JSON (bad character)', path: '/v3/kv/put', body: '{"key" "a"}' },
  { name: 'malformed JSON (bad literal)', path: '/v3/kv/put', body: '{"key":"YQ==","prev_kv":tru}' },
  { name: 'malformed JSON (trailing comma)', path: '/v3/kv/put', body: '{"key":"YQ==",}' },
  { name: 'not an object', path: '/v3/kv/put', body: '[1,2]' },
  { name: 'a string body', path: '/v3/kv/put', body: '"x"' },
  { name: 'bytes as a number', path: '/v3/kv/put', body: j({ key: 5, value: b64('v') }) },
  { name: 'bytes not base64', path: '/v3/kv/put', body: j({ key: 'not base64!', value: b64('v') }) },
  { name: 'bytes with bad padding', path: '/v3/kv/put', body: j({ key: 'YQ=', value: b64('v') }) },
  { name: 'int64 as a word', path: '/v3/kv/range', body: j({ key: b64('a'), limit: 'abc' }) },
  { name: 'int64 as a fraction', path: '/v3/kv/range', body: j({ key: b64('a'), limit: 1.5 }) },
  { name: 'int64 as a bool', path: '/v3/kv/range', body: j({ key: b64('a'), limit: true }) },
  { name: 'int64 overflow', path: '/v3/kv/range', body: '{"key":"YQ==","limit":99999999999999999999}' },
  { name: 'bool as a string', path: '/v3/kv/put', body: j({ key: b64('a'), value: b64('v'), prev_kv: 'yes' }) },
  { name: 'unknown enum name', path: '/v3/kv/range', body: j({ key: b64('a'), sort_order: 'BOGUS' }) },
  { name: 'repeated field given an object', path: '/v3/kv/txn', body: j({ success: { request_put: {} } }) },
  { name: 'message field given a string', path: '/v3/kv/txn', body: j({ success: ['x'] }) },
  { name: 'missing key', path: '/v3/kv/put', body: j({ value: b64('v') }) },
  { name: 'watch, truncated first request', path: '/v3/watch', body: '{"create_request":{"key":"YQ==",' },
  { name: 'watch, unknown filter', path: '/v3/watch', body: j({ create_request: { key: b64('a'), filters: ['NOPE'] } }) },
  { name: 'snapshot, truncated request', path: '/v3/maintenance/snapshot', body: '{"x":' },
  { name: 'request too large (etcd limit)', path: '/v3/kv/put', body: big(1_700_000) },
  { name: 'request too large (gRPC limit)', path: '/v3/kv/put', body: big(2_200_000) },
  { name: 'nothing was stored by the bad requests', path: '/v3/kv/range', body: j({ key: b64('\0'), range_end: b64('\0') }) },

  // leases (ids differ between servers: captured per server, normalised in the answers)
  { name: 'lease grant', path: '/v3/lease/grant', body: j({ TTL: 60 }), capture: ['lease', 'ID'] },
  { name: 'lease grant, explicit id', path: '/v3/lease/grant', body: j({ TTL: '30', ID: '12345' }) },
  { name: 'lease grant, id in use', path: '/v3/lease/grant', body: j({ TTL: '30', ID: '12345' }) },
  { name: 'put with the lease', path: '/v3/kv/put', body: (c) => j({ key: b64('leased'), value: b64('v'), lease: c.lease }) },
  { name: 'leases', path: '/v3/lease/leases', body: '{}' },
  { name: 'leases (kv path)', path: '/v3/kv/lease/leases', body: '{}' },
  { name: 'time to live with keys', path: '/v3/lease/timetolive', body: (c) => j({ ID: c.lease, keys: true }), ignore: ['TTL'] },
  { name: 'time to live (kv path), unknown lease', path: '/v3/kv/lease/timetolive', body: j({ ID: '999' }) },
  { name: 'revoke', path: '/v3/lease/revoke', body: (c) => j({ ID: c.lease }) },
  { name: 'revoke (kv path), already gone', path: '/v3/kv/lease/revoke', body: (c) => j({ ID: c.lease }) },
  { name: 'the leased key went with its lease', path: '/v3/kv/range', body: j({ key: b64('leased') }) },

  // /health fails while an alarm is active
  { name: 'activate NOSPACE', path: '/v3/maintenance/alarm', body: j({ action: 'ACTIVATE', memberID: '1', alarm: 'NOSPACE' }) },
  { name: 'health with an alarm', method: 'GET', path: '/health' },
  { name: 'put under NOSPACE', path: '/v3/kv/put', body: j({ key: b64('n'), value: b64('v') }) },
  { name: 'status lists the alarm', path: '/v3/maintenance/status', body: '{}' },
  { name: 'deactivate NOSPACE', path: '/v3/maintenance/alarm', body: j({ action: 'DEACTIVATE', memberID: '1', alarm: 'NOSPACE' }) },
  { name: 'health again', method: 'GET', path: '/health' },
];

const targets: string[] = ETCD_AVAILABLE ? ['etcd', 'lmdb', 'leveldb', 'memory'] : [];

describe.skipIf(!ETCD_AVAILABLE)('HTTP gateway compared with etcd 3.4', () => {
  const answers = new Map<string, HttpAnswer[]>();
  const servers: RunningServer[] = [];

  beforeAll(async () => {
    for (const t of targets) {
      const server = t === 'etcd' ? await startEtcd() : await startPlinth({ backend: t as 'lmdb' | 'leveldb' | 'memory' });
      servers.push(server);
      const out: HttpAnswer[] = [];
      const ctx: Ctx = {};
      for (const step of STEPS) {
        const body = typeof step.body === 'function' ? step.body(ctx) : step.body;
        const answer = await call(server.url, step.method ?? 'POST', step.path, body);
        if (step.capture) ctx[step.capture[0]] = new RegExp(`"${step.capture[1]}":"(\\d+)"`).exec(answer.text)?.[1] ?? '';
        out.push(answer);
      }
      answers.set(t, out);
      await server.stop();
    }
  }, 180_000);

  afterAll(async () => {
    for (const s of servers) await s.stop();
  });

  for (const t of targets.filter((x) => x !== 'etcd')) {
    it.each(STEPS.map((s, i) => [s.name, i] as const))(`${t}: %s`, (_name, i) => {
      const want = answers.get('etcd')![i];
      const got = answers.get(t)![i];
      const ignore = STEPS[i].ignore;
      expect({ status: got.status, type: got.contentType, body: drop(got.body, ignore) }).toEqual({
        status: want.status,
        type: want.contentType,
        body: drop(want.body, ignore),
      });
    });
  }
});

describe.skipIf(!ETCD_AVAILABLE)('gateway watch stream compared with etcd 3.4', () => {
  it('creates, streams put and delete events with prev_kv, as newline-delimited JSON', async () => {
    const results: unknown[][] = [];
    for (const t of ['etcd', 'plinth']) {
      const server = t === 'etcd' ? await startEtcd() : await startPlinth({ backend: 'memory' });
      try {
        const ctl = new AbortController();
        const res = await fetch(server.url + '/v3/watch', {
          method: 'POST',
          body: JSON.stringify({ create_request: { key: b64('w'), prev_kv: true } }),
          signal: ctl.signal,
        });
        expect(res.status).toBe(200);
        const lines = readLines(res, 3, 8000);
        // Let the watch be created before writing.
        await new Promise((r) => setTimeout(r, 300));
        await call(server.url, 'POST', '/v3/kv/put', JSON.stringify({ key: b64('w'), value: b64('1') }));
        await call(server.url, 'POST', '/v3/kv/deleterange', JSON.stringify({ key: b64('w') }));
        const got = await lines;
        ctl.abort();
        results.push(got.map((l) => normalise(JSON.parse(l))));
      } finally {
        await server.stop();
      }
    }
    expect(results[1]).toEqual(results[0]);
    expect(results[0]).toHaveLength(3);
  }, 60_000);
});
