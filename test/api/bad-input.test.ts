// Bad input on the KV service, through a raw @grpc/grpc-js client so that the exact gRPC status
// code and message can be asserted. Every expectation here was taken from real etcd 3.4.23; run
// with PLINTH_API_TARGETS=etcd to check the tests themselves.
//
// Each rejected request must also leave the store untouched: same revision, same number of keys,
// and none of the request's keys present.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../helpers/servers';
import {
  apiTargets,
  grpcError,
  RawKv,
  serializedSize,
  serializeRequest,
  startTarget,
  Status,
  type Compare,
  type KvMethod,
  type RequestOp,
} from './grpc-client';

const MAX_REQUEST_BYTES = 1.5 * 1024 * 1024; // etcd's default --max-request-bytes (1572864)
const GRPC_OVERHEAD_BYTES = 512 * 1024; // etcd lets gRPC receive max-request-bytes + 512 KiB

const B = (s: string) => Buffer.from(s);
const put = (key: string, value = 'v'): RequestOp => ({ request_put: { key: B(key), value: B(value) } });
const del = (key: string, rangeEnd?: string): RequestOp => ({
  request_delete_range: { key: B(key), ...(rangeEnd !== undefined ? { range_end: B(rangeEnd) } : {}) },
});
const get = (key: string): RequestOp => ({ request_range: { key: B(key) } });

const MSG = {
  emptyKey: 'etcdserver: key is not provided',
  valueProvided: 'etcdserver: value is provided',
  leaseProvided: 'etcdserver: lease is provided',
  keyNotFound: 'etcdserver: key not found',
  leaseNotFound: 'etcdserver: requested lease not found',
  tooManyOps: 'etcdserver: too many operations in txn request',
  duplicateKey: 'etcdserver: duplicate key given in txn request',
  tooLarge: 'etcdserver: request is too large',
  future: 'etcdserver: mvcc: required revision is a future revision',
  compacted: 'etcdserver: mvcc: required revision has been compacted',
} as const;

interface Snapshot {
  revision: string;
  count: string;
}

/** Revision and total key count, read without changing either. */
async function snapshot(kv: RawKv): Promise<Snapshot> {
  const r = await kv.range({ key: B('\0'), range_end: B('\0'), count_only: true });
  return { revision: r.header.revision, count: r.count };
}

/**
 * Runs a request that must be rejected with exactly (code, details), then checks that nothing was
 * stored: revision and key count unchanged, and none of `keys` exists.
 */
async function expectRejected(
  kv: RawKv,
  run: () => Promise<unknown>,
  code: number,
  details: string | RegExp,
  keys: string[] = [],
): Promise<void> {
  const before = await snapshot(kv);
  const err = await grpcError(run());
  expect(Status[err.code], `status code (details: ${err.details})`).toBe(Status[code]);
  if (typeof details === 'string') expect(err.details).toBe(details);
  else expect(err.details).toMatch(details);
  expect(await snapshot(kv)).toEqual(before);
  for (const key of keys) {
    const r = await kv.range({ key: B(key) });
    expect(r.kvs, `key ${JSON.stringify(key)} must not exist`).toEqual([]);
    expect(r.header.revision).toBe(before.revision);
  }
}

interface Case {
  name: string;
  method: KvMethod;
  req: unknown;
  code: number;
  details: string;
  keys?: string[]; // keys that must not exist afterwards
}

const many = <T>(n: number, make: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => make(i));
const absent = (key: string): Compare => ({ key: B(key), target: 'VERSION', result: 'EQUAL', version: 0 });

const VALIDATION_CASES: Case[] = [
  // --- empty key
  { name: 'Put with an empty key', method: 'Put', req: { key: B(''), value: B('v') }, code: Status.INVALID_ARGUMENT, details: MSG.emptyKey },
  { name: 'Range with an empty key', method: 'Range', req: { key: B('') }, code: Status.INVALID_ARGUMENT, details: MSG.emptyKey },
  { name: 'Range with an empty key and a range_end', method: 'Range', req: { key: B(''), range_end: B('\0') }, code: Status.INVALID_ARGUMENT, details: MSG.emptyKey },
  { name: 'DeleteRange with an empty key', method: 'DeleteRange', req: { key: B('') }, code: Status.INVALID_ARGUMENT, details: MSG.emptyKey },
  { name: 'DeleteRange with an empty key and a range_end', method: 'DeleteRange', req: { key: B(''), range_end: B('\0') }, code: Status.INVALID_ARGUMENT, details: MSG.emptyKey },
  { name: 'empty key wins over ignore_value with a value', method: 'Put', req: { key: B(''), value: B('v'), ignore_value: true }, code: Status.INVALID_ARGUMENT, details: MSG.emptyKey },
  { name: 'Txn put with an empty key', method: 'Txn', req: { success: [put('bad/txn-ok'), put('')] }, code: Status.INVALID_ARGUMENT, details: MSG.emptyKey, keys: ['bad/txn-ok'] },
  { name: 'Txn range with an empty key (failure branch)', method: 'Txn', req: { success: [put('bad/txn-ok')], failure: [get('')] }, code: Status.INVALID_ARGUMENT, details: MSG.emptyKey, keys: ['bad/txn-ok'] },
  { name: 'Txn compare with an empty key', method: 'Txn', req: { compare: [{ key: B(''), target: 'VERSION', result: 'EQUAL', version: 0 }], success: [put('bad/txn-ok')] }, code: Status.INVALID_ARGUMENT, details: MSG.emptyKey, keys: ['bad/txn-ok'] },

  // --- ignore_value / ignore_lease
  { name: 'Put with ignore_value and a value', method: 'Put', req: { key: B('bad/iv'), value: B('x'), ignore_value: true }, code: Status.INVALID_ARGUMENT, details: MSG.valueProvided, keys: ['bad/iv'] },
  { name: 'Put with ignore_lease and a lease', method: 'Put', req: { key: B('bad/il'), value: B('x'), lease: 5, ignore_lease: true }, code: Status.INVALID_ARGUMENT, details: MSG.leaseProvided, keys: ['bad/il'] },
  { name: 'Put with ignore_value on a missing key', method: 'Put', req: { key: B('bad/iv-missing'), ignore_value: true }, code: Status.INVALID_ARGUMENT, details: MSG.keyNotFound, keys: ['bad/iv-missing'] },
  { name: 'Put with ignore_lease on a missing key', method: 'Put', req: { key: B('bad/il-missing'), value: B('x'), ignore_lease: true }, code: Status.INVALID_ARGUMENT, details: MSG.keyNotFound, keys: ['bad/il-missing'] },
  { name: 'Txn put with ignore_value and a value', method: 'Txn', req: { success: [{ request_put: { key: B('bad/iv'), value: B('x'), ignore_value: true } }] }, code: Status.INVALID_ARGUMENT, details: MSG.valueProvided, keys: ['bad/iv'] },
  { name: 'Txn put with ignore_value on a missing key', method: 'Txn', req: { success: [put('bad/txn-ok'), { request_put: { key: B('bad/iv-missing'), ignore_value: true } }] }, code: Status.INVALID_ARGUMENT, details: MSG.keyNotFound, keys: ['bad/txn-ok', 'bad/iv-missing'] },

  // --- unknown lease
  { name: 'Put with an unknown lease', method: 'Put', req: { key: B('bad/lease'), value: B('x'), lease: 123456789 }, code: Status.NOT_FOUND, details: MSG.leaseNotFound, keys: ['bad/lease'] },
  { name: 'Txn put with an unknown lease', method: 'Txn', req: { success: [put('bad/txn-ok'), { request_put: { key: B('bad/lease'), value: B('x'), lease: 123456789 } }] }, code: Status.NOT_FOUND, details: MSG.leaseNotFound, keys: ['bad/txn-ok', 'bad/lease'] },

  // --- txn size (default --max-txn-ops 128, checked per list: compare, success, failure)
  { name: 'Txn with 129 puts', method: 'Txn', req: { success: many(129, (i) => put(`bad/many/${i}`)) }, code: Status.INVALID_ARGUMENT, details: MSG.tooManyOps, keys: ['bad/many/0', 'bad/many/128'] },
  { name: 'Txn with 129 ranges in the failure branch', method: 'Txn', req: { success: [put('bad/txn-ok')], failure: many(129, (i) => get(`bad/many/${i}`)) }, code: Status.INVALID_ARGUMENT, details: MSG.tooManyOps, keys: ['bad/txn-ok'] },
  { name: 'Txn with 129 compares', method: 'Txn', req: { compare: many(129, (i) => absent(`bad/cmp/${i}`)), success: [put('bad/txn-ok')] }, code: Status.INVALID_ARGUMENT, details: MSG.tooManyOps, keys: ['bad/txn-ok'] },

  // --- overlapping writes in one txn
  { name: 'Txn putting the same key twice', method: 'Txn', req: { success: [put('bad/dup'), put('bad/dup', 'w')] }, code: Status.INVALID_ARGUMENT, details: MSG.duplicateKey, keys: ['bad/dup'] },
  { name: 'Txn putting and deleting the same key', method: 'Txn', req: { success: [put('bad/dup'), del('bad/dup')] }, code: Status.INVALID_ARGUMENT, details: MSG.duplicateKey, keys: ['bad/dup'] },
  { name: 'Txn putting a key inside a deleted range', method: 'Txn', req: { success: [put('bad/dup/b'), del('bad/dup/a', 'bad/dup/c')] }, code: Status.INVALID_ARGUMENT, details: MSG.duplicateKey, keys: ['bad/dup/b'] },
  { name: 'Txn deleting a range then putting a key inside it', method: 'Txn', req: { success: [del('bad/dup/a', 'bad/dup/c'), put('bad/dup/b')] }, code: Status.INVALID_ARGUMENT, details: MSG.duplicateKey, keys: ['bad/dup/b'] },
  { name: 'Txn putting a key also put by a nested txn', method: 'Txn', req: { success: [put('bad/dup'), { request_txn: { success: [put('bad/dup')] } }] }, code: Status.INVALID_ARGUMENT, details: MSG.duplicateKey, keys: ['bad/dup'] },
  { name: 'Txn with a nested txn putting one key twice', method: 'Txn', req: { success: [{ request_txn: { success: [put('bad/dup'), put('bad/dup')] } }] }, code: Status.INVALID_ARGUMENT, details: MSG.duplicateKey, keys: ['bad/dup'] },
  // etcd unions both branches of a nested txn when looking for duplicates, even though only one
  // of them can run.
  { name: 'Txn with two nested txns writing one key in opposite branches', method: 'Txn', req: { success: [{ request_txn: { success: [put('bad/dup')] } }, { request_txn: { failure: [put('bad/dup')] } }] }, code: Status.INVALID_ARGUMENT, details: MSG.duplicateKey, keys: ['bad/dup'] },
];

// Raw request bytes that are not a valid message. etcd (grpc-go + gogoproto) answers INTERNAL with
// "grpc: error unmarshalling request: <decoder message>"; the decoder message is specific to Go's
// protobuf library ("unexpected EOF", "proto: wrong wireType = 2 for field Revision", ...), so only
// the code and the grpc-go prefix are asserted.
const MALFORMED: { name: string; bytes: number[]; keys: string[] }[] = [
  { name: 'truncated varint length of field 1', bytes: [0x0a, 0xff, 0xff, 0xff], keys: [] },
  { name: 'field 1 shorter than its length', bytes: [0x0a, 0x05, 0x61], keys: ['a'] },
  { name: 'truncated tag varint', bytes: [0xff], keys: [] },
];
const UNMARSHAL_PREFIX = /^grpc: error unmarshalling request: ./;

describe.each(apiTargets())('KV bad input (%s)', (target) => {
  let server: RunningServer;
  let kv: RawKv;

  beforeAll(async () => {
    server = await startTarget(target);
    kv = new RawKv(server.endpoint);
  });

  afterAll(async () => {
    kv?.close();
    await server?.stop();
  });

  it('starts at revision 1 with no keys', async () => {
    expect(await snapshot(kv)).toEqual({ revision: '1', count: '0' });
  });

  it.each(VALIDATION_CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    await expectRejected(kv, () => kv.call(c.method, c.req), c.code, c.details, c.keys);
  });

  describe('valid requests near the validation limits', () => {
    it('accepts a txn with exactly 128 ops in each list, as one revision', async () => {
      const base = Number((await snapshot(kv)).revision);
      const res = await kv.txn({
        compare: many(128, (i) => absent(`ok/128/${i}`)),
        success: many(128, (i) => put(`ok/128/${i}`, `v${i}`)),
        failure: many(128, (i) => get(`ok/128/${i}`)),
      });
      expect(res.succeeded).toBe(true);
      expect(res.header.revision).toBe(String(base + 1));
      expect(res.responses).toHaveLength(128);
      const r = await kv.range({ key: B('ok/128/'), range_end: B('ok/1280'), count_only: true });
      expect(r.count).toBe('128');
    });

    it('accepts overlapping deletes in one txn', async () => {
      await kv.put({ key: B('ok/od/b'), value: B('x') });
      const base = Number((await snapshot(kv)).revision);
      const res = await kv.txn({ success: [del('ok/od/a', 'ok/od/c'), del('ok/od/b')] });
      expect(res.succeeded).toBe(true);
      expect(res.header.revision).toBe(String(base + 1));
      expect(res.responses.map((r) => r.response_delete_range?.deleted)).toEqual(['1', '0']);
    });

    it('accepts the same key in the success and failure branches', async () => {
      const base = Number((await snapshot(kv)).revision);
      const res = await kv.txn({ success: [put('ok/branch', 's')], failure: [put('ok/branch', 'f')] });
      expect(res.succeeded).toBe(true);
      expect(res.header.revision).toBe(String(base + 1));
      expect((await kv.range({ key: B('ok/branch') })).kvs[0].value.toString()).toBe('s');
    });

    it('checks leases and ignore_value only in the branch that runs', async () => {
      const base = Number((await snapshot(kv)).revision);
      const res = await kv.txn({
        success: [],
        failure: [
          { request_put: { key: B('ok/untaken'), value: B('x'), lease: 123456789 } },
          { request_put: { key: B('ok/untaken2'), ignore_value: true } },
        ],
      });
      expect(res.succeeded).toBe(true);
      expect(res.responses).toEqual([]);
      expect((await snapshot(kv)).revision).toBe(String(base));
    });

    it('accepts Range with revision 0 or negative as "current"', async () => {
      await kv.put({ key: B('ok/rev0'), value: B('x') });
      const cur = (await snapshot(kv)).revision;
      for (const revision of [0, -1]) {
        const r = await kv.range({ key: B('ok/rev0'), revision });
        expect(r.header.revision).toBe(cur);
        expect(r.kvs.map((k) => k.value.toString())).toEqual(['x']);
      }
    });
  });

  describe('oversized requests', () => {
    it('rejects a Put just above --max-request-bytes with InvalidArgument "request is too large"', async () => {
      const req = { key: B('big/just-above'), value: Buffer.alloc(MAX_REQUEST_BYTES, 0x61) };
      // Reaches the server (below the gRPC limit), fails etcd's own size check.
      expect(serializedSize('Put', req)).toBeGreaterThan(MAX_REQUEST_BYTES);
      expect(serializedSize('Put', req)).toBeLessThan(MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES);
      await expectRejected(kv, () => kv.put(req), Status.INVALID_ARGUMENT, MSG.tooLarge, ['big/just-above']);
    });

    it('rejects a Txn whose puts add up to more than --max-request-bytes', async () => {
      const value = Buffer.alloc(800 * 1024, 0x62);
      const req = { success: [{ request_put: { key: B('big/t1'), value } }, { request_put: { key: B('big/t2'), value } }] };
      expect(serializedSize('Txn', req)).toBeLessThan(MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES);
      await expectRejected(kv, () => kv.txn(req), Status.INVALID_ARGUMENT, MSG.tooLarge, ['big/t1', 'big/t2']);
    });

    it('rejects a Put far above the limit (3 MiB) at the gRPC layer with ResourceExhausted', async () => {
      const req = { key: B('big/far-above'), value: Buffer.alloc(3 * 1024 * 1024, 0x63) };
      const size = serializedSize('Put', req);
      expect(size).toBeGreaterThan(MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES);
      await expectRejected(
        kv,
        () => kv.put(req),
        Status.RESOURCE_EXHAUSTED,
        `grpc: received message larger than max (${size} vs. ${MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES})`,
        ['big/far-above'],
      );
    });

    it('draws the gRPC limit at exactly max-request-bytes + 512 KiB of message', async () => {
      const limit = MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES; // 2097152
      const key = B('big/edge');
      // Find the value length whose encoded PutRequest is exactly `limit` bytes (bounded search).
      let valueLen = limit - 16;
      for (let i = 0; i < 32 && serializedSize('Put', { key, value: Buffer.alloc(valueLen) }) < limit; i++) valueLen++;
      const atLimit = { key, value: Buffer.alloc(valueLen, 0x64) };
      expect(serializedSize('Put', atLimit)).toBe(limit);
      // Exactly at the limit: gRPC accepts it, etcd's own check rejects it.
      await expectRejected(kv, () => kv.put(atLimit), Status.INVALID_ARGUMENT, MSG.tooLarge, ['big/edge']);
      // One byte more: rejected by gRPC.
      const overLimit = { key, value: Buffer.alloc(valueLen + 1, 0x64) };
      expect(serializedSize('Put', overLimit)).toBe(limit + 1);
      await expectRejected(
        kv,
        () => kv.put(overLimit),
        Status.RESOURCE_EXHAUSTED,
        `grpc: received message larger than max (${limit + 1} vs. ${limit})`,
        ['big/edge'],
      );
    });

    it('accepts a Put 1 KiB below --max-request-bytes and returns it intact', async () => {
      const value = Buffer.alloc(MAX_REQUEST_BYTES - 1024);
      for (let i = 0; i < value.length; i++) value[i] = (i * 31 + 7) & 0xff;
      const base = Number((await snapshot(kv)).revision);
      const res = await kv.put({ key: B('big/below'), value });
      expect(res.header.revision).toBe(String(base + 1));
      const r = await kv.range({ key: B('big/below') });
      expect(r.kvs).toHaveLength(1);
      expect(Buffer.compare(r.kvs[0].value, value)).toBe(0);
      await kv.deleteRange({ key: B('big/below') });
    });
  });

  describe('malformed protobuf', () => {
    it('serves a well-formed request sent through the raw-bytes path', async () => {
      // Control: the raw path itself works (a valid RangeRequest encoding).
      const out = await kv.rawUnary('Range', serializeRequest('Range', { key: B('nothing-here') }));
      expect(out.length).toBeGreaterThan(0);
    });

    it('treats an empty message as a request with no key', async () => {
      await expectRejected(kv, () => kv.rawUnary('Put', Buffer.alloc(0)), Status.INVALID_ARGUMENT, MSG.emptyKey);
    });

    const methods: KvMethod[] = ['Put', 'Range', 'DeleteRange', 'Txn', 'Compact'];
    const cases = MALFORMED.flatMap((m) => methods.map((method) => ({ ...m, method })));
    it.each(cases.map((c) => [`${c.method}: ${c.name} -> INTERNAL`, c] as const))('%s', async (_name, c) => {
      await expectRejected(kv, () => kv.rawUnary(c.method, Buffer.from(c.bytes)), Status.INTERNAL, UNMARSHAL_PREFIX, c.keys);
    });

    it('gives the exact grpc-go message for a truncated Put', async () => {
      // etcd's full answer; the part after the prefix comes from Go's protobuf decoder.
      const err = await grpcError(kv.rawUnary('Put', Buffer.from([0x0a, 0xff, 0xff, 0xff])));
      expect(err.code).toBe(Status.INTERNAL);
      expect(err.details).toMatch(UNMARSHAL_PREFIX);
      expect(err.details).toBe('grpc: error unmarshalling request: unexpected EOF');
    });
  });

  describe('revisions out of range', () => {
    it('rejects a Range at a future revision', async () => {
      const cur = Number((await snapshot(kv)).revision);
      for (const revision of [cur + 1, cur + 1000]) {
        await expectRejected(kv, () => kv.range({ key: B('anything'), revision }), Status.OUT_OF_RANGE, MSG.future);
      }
    });

    it('rejects a Compact at a future revision', async () => {
      const cur = Number((await snapshot(kv)).revision);
      await expectRejected(kv, () => kv.compact({ revision: cur + 1 }), Status.OUT_OF_RANGE, MSG.future);
      await expectRejected(kv, () => kv.compact({ revision: cur + 1000 }), Status.OUT_OF_RANGE, MSG.future);
    });

    it('after Compact(rev): compacted below rev, readable at rev and above, re-compaction refused', async () => {
      const k = B('cmp/key');
      const revs: number[] = [];
      for (let i = 1; i <= 4; i++) revs.push(Number((await kv.put({ key: k, value: B(`v${i}`) })).header.revision));
      const cur = revs[3];
      const rev = revs[2]; // compact at the 3rd put

      const res = await kv.compact({ revision: rev });
      expect(res.header.revision).toBe(String(cur)); // compaction is not a write

      // Below the compacted revision: gone.
      await expectRejected(kv, () => kv.range({ key: k, revision: rev - 1 }), Status.OUT_OF_RANGE, MSG.compacted);
      await expectRejected(kv, () => kv.range({ key: k, revision: revs[0] }), Status.OUT_OF_RANGE, MSG.compacted);
      // At the compacted revision and above: readable, with the value as of that revision.
      const atRev = await kv.range({ key: k, revision: rev });
      expect(atRev.header.revision).toBe(String(cur));
      expect(atRev.kvs.map((x) => [x.value.toString(), x.mod_revision, x.version])).toEqual([['v3', String(rev), '3']]);
      const atCur = await kv.range({ key: k, revision: cur });
      expect(atCur.kvs.map((x) => [x.value.toString(), x.mod_revision, x.version])).toEqual([['v4', String(cur), '4']]);

      // Compacting again at, or below, the compacted revision.
      await expectRejected(kv, () => kv.compact({ revision: rev }), Status.OUT_OF_RANGE, MSG.compacted);
      await expectRejected(kv, () => kv.compact({ revision: rev - 1 }), Status.OUT_OF_RANGE, MSG.compacted);
      await expectRejected(kv, () => kv.compact({ revision: 0 }), Status.OUT_OF_RANGE, MSG.compacted);
      // Future still wins over nothing: the future check applies after a compaction too.
      await expectRejected(kv, () => kv.compact({ revision: cur + 1 }), Status.OUT_OF_RANGE, MSG.future);
      await expectRejected(kv, () => kv.range({ key: k, revision: cur + 1 }), Status.OUT_OF_RANGE, MSG.future);

      // Compacting forward to the current revision (physical) is allowed.
      const phys = await kv.compact({ revision: cur, physical: true });
      expect(phys.header.revision).toBe(String(cur));
      await expectRejected(kv, () => kv.range({ key: k, revision: rev }), Status.OUT_OF_RANGE, MSG.compacted);
      expect((await kv.range({ key: k })).kvs[0].value.toString()).toBe('v4');
    });
  });
});

// --max-request-bytes must be honoured when given (and the gRPC limit follows it, +512 KiB).
describe.each(apiTargets())('KV request size limits with --max-request-bytes 4096 (%s)', (target) => {
  const MAX = 4096;
  let server: RunningServer;
  let kv: RawKv;

  beforeAll(async () => {
    server = await startTarget(target, ['--max-request-bytes', String(MAX)]);
    kv = new RawKv(server.endpoint);
  });

  afterAll(async () => {
    kv?.close();
    await server?.stop();
  });

  it('accepts a Put well below the limit', async () => {
    const res = await kv.put({ key: B('small'), value: Buffer.alloc(MAX - 1024, 0x61) });
    expect(res.header.revision).toBe('2');
  });

  it('rejects a Put just above the limit with InvalidArgument', async () => {
    await expectRejected(kv, () => kv.put({ key: B('above'), value: Buffer.alloc(MAX, 0x61) }), Status.INVALID_ARGUMENT, MSG.tooLarge, ['above']);
  });

  it('rejects a Put above the limit + 512 KiB with ResourceExhausted', async () => {
    const req = { key: B('far'), value: Buffer.alloc(MAX + GRPC_OVERHEAD_BYTES, 0x61) };
    const size = serializedSize('Put', req);
    await expectRejected(
      kv,
      () => kv.put(req),
      Status.RESOURCE_EXHAUSTED,
      `grpc: received message larger than max (${size} vs. ${MAX + GRPC_OVERHEAD_BYTES})`,
      ['far'],
    );
  });
});
