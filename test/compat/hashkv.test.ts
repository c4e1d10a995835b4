// Comparison test for Maintenance.HashKV: the same requests go to real etcd 3.4 and to Plinth on
// each engine; HashKV must then answer the same hash, compact_revision and header revision (or the
// same error) at every revision asked. Plinth must be built first (npm run build).
//
// Maintenance.Hash is not comparable with etcd's (it hashes etcd's whole bbolt file, members and
// cluster buckets included; see src/mvcc/hash.ts), so for it the engines are compared with each other.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { packageDefinition, RawKv, type RequestOp } from '../api/grpc-client';
import { ETCD_AVAILABLE, startEtcd, startPlinth, type RunningServer } from '../helpers/servers';

const ETCD_ARGS = ['--heartbeat-interval=10', '--election-timeout=100'];
const ENGINES = ['lmdb', 'leveldb', 'memory', 'bolt'] as const;
const CALL_TIMEOUT_MS = 15_000;

interface HashKVResponse {
  header: { revision: string };
  hash: number;
  compact_revision: string;
}
interface HashResponse {
  header: { revision: string };
  hash: number;
}

const Maintenance = (grpc.loadPackageDefinition(packageDefinition).etcdserverpb as grpc.GrpcObject)
  .Maintenance as grpc.ServiceClientConstructor;

class MaintenanceClient {
  private readonly client: grpc.Client;
  constructor(endpoint: string) {
    this.client = new Maintenance(endpoint, grpc.credentials.createInsecure());
  }
  private call<T>(method: string, req: unknown): Promise<T> {
    const fn = (this.client as unknown as Record<string, Function>)[method].bind(this.client);
    return new Promise<T>((res, rej) =>
      fn(req, new grpc.Metadata(), { deadline: Date.now() + CALL_TIMEOUT_MS }, (err: grpc.ServiceError | null, out: T) =>
        err ? rej(err) : res(out),
      ),
    );
  }
  hashKV(revision: number): Promise<HashKVResponse> {
    return this.call('HashKV', { revision });
  }
  hash(): Promise<HashResponse> {
    return this.call('Hash', {});
  }
  close(): void {
    this.client.close();
  }
}

/** One server under test, with its clients. */
interface Node {
  name: string;
  server: RunningServer;
  kv: RawKv;
  mt: MaintenanceClient;
}

let nodes: Node[] = [];

async function startAll(): Promise<Node[]> {
  const starts: [string, () => Promise<RunningServer>][] = [
    ['etcd', () => startEtcd(ETCD_ARGS)],
    // One advertised client URL for all: the members bucket (part of Maintenance.Hash, as etcd's) holds
    // it, and the engines' hashes are compared with each other.
    ...ENGINES.map((e): [string, () => Promise<RunningServer>] => [`plinth:${e}`, () => startPlinth({ backend: e, advertiseUrl: 'http://127.0.0.1:2379' })]),
  ];
  const settled = await Promise.allSettled(starts.map(([, start]) => start()));
  const started = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = settled.find((s) => s.status === 'rejected') as PromiseRejectedResult | undefined;
  if (failed) {
    await Promise.all(started.map((s) => s.stop()));
    throw failed.reason;
  }
  nodes = started.map((server, i) => ({ name: starts[i][0], server, kv: new RawKv(server.endpoint), mt: new MaintenanceClient(server.endpoint) }));
  return nodes;
}

afterEach(async () => {
  for (const n of nodes) {
    n.kv.close();
    n.mt.close();
  }
  await Promise.all(nodes.map((n) => n.server.stop()));
  nodes = [];
});

type Outcome = { hash: number; compactRevision: string; revision: string } | { code: number; details: string };

async function hashKVOutcome(n: Node, rev: number): Promise<Outcome> {
  try {
    const r = await n.mt.hashKV(rev);
    return { hash: r.hash, compactRevision: r.compact_revision, revision: r.header.revision };
  } catch (e) {
    const err = e as grpc.ServiceError;
    if (typeof err?.code !== 'number') throw e;
    return { code: err.code, details: err.details };
  }
}

/** Asks every node for HashKV at each revision; every Plinth must answer exactly as etcd. */
async function expectSameHashKV(all: Node[], revs: number[]): Promise<Outcome[]> {
  const [etcd, ...plinths] = all;
  const want = await Promise.all(revs.map((r) => hashKVOutcome(etcd, r)));
  for (const p of plinths) {
    const got = await Promise.all(revs.map((r) => hashKVOutcome(p, r)));
    for (let i = 0; i < revs.length; i++) {
      expect(got[i], `${p.name}: HashKV(${revs[i]})`).toEqual(want[i]);
    }
  }
  return want;
}

/** Sends one request to every node (in parallel: each node gets its requests in order). */
async function onAll(all: Node[], f: (kv: RawKv) => Promise<{ header: { revision: string } }>): Promise<number> {
  const revs = await Promise.all(all.map((n) => f(n.kv).then((r) => Number(r.header.revision))));
  // Keep the histories in step: a divergence here would make any hash comparison meaningless.
  expect(new Set(revs).size, `revisions after a request: ${revs.join(', ')}`).toBe(1);
  return revs[0];
}

const put = (key: string, value: string): RequestOp => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } });
const del = (key: string, rangeEnd?: string): RequestOp => ({
  request_delete_range: { key: Buffer.from(key), ...(rangeEnd ? { range_end: Buffer.from(rangeEnd) } : {}) },
});

/** mulberry32: a small seeded PRNG, so a failing sequence can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const B = (s: string): Buffer => Buffer.from(s);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe.skipIf(!ETCD_AVAILABLE)('HashKV against etcd 3.4', () => {
  it('agrees after puts, overwrites, deletes, a txn and a compaction', { timeout: 120_000 }, async () => {
    const all = await startAll();
    // A fresh store: just the bucket name, never compacted.
    await expectSameHashKV(all, [0, 1, 2, -1]);

    await onAll(all, (kv) => kv.put({ key: B('a'), value: B('1') })); // 2
    await onAll(all, (kv) => kv.put({ key: B('b'), value: B('1') })); // 3
    await onAll(all, (kv) => kv.put({ key: B('a'), value: B('2') })); // 4 overwrite
    await onAll(all, (kv) => kv.put({ key: B('c'), value: B('x'.repeat(300)) })); // 5
    await onAll(all, (kv) => kv.deleteRange({ key: B('b') })); // 6
    await onAll(all, (kv) =>
      kv.txn({
        compare: [{ key: B('a'), target: 'VERSION', result: 'EQUAL', version: 2 }],
        success: [put('d', '1'), del('a'), put('e', '1')],
        failure: [put('never', '1')],
      }),
    ); // 7: 7/0 put d, 7/1 tombstone a, 7/2 put e
    await onAll(all, (kv) => kv.put({ key: B('a'), value: B('3') })); // 8: a's second generation
    await onAll(all, (kv) => kv.deleteRange({ key: B('c'), range_end: B('e') })); // 9: c, d
    await onAll(all, (kv) => kv.put({ key: B('f'), value: B('') })); // 10
    const before = await expectSameHashKV(all, [0, 1, 4, 6, 7, 9, 10, 11, 100]);
    expect(before.filter((o) => 'hash' in o).length).toBe(7);

    await onAll(all, (kv) => kv.compact({ revision: 7, physical: true }));
    await onAll(all, (kv) => kv.put({ key: B('g'), value: B('1') })); // 11
    await onAll(all, (kv) => kv.put({ key: B('a'), value: B('4') })); // 12
    const after = await expectSameHashKV(all, [0, 1, 6, 7, 8, 9, 10, 11, 12, 13, -1]);
    expect(after[0]).toMatchObject({ compactRevision: '7', revision: '12' });
    expect(after[3]).toMatchObject({ code: grpc.status.OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision has been compacted' });
    expect(after[9]).toMatchObject({ code: grpc.status.OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision is a future revision' });

    // A second compaction, at the current revision.
    await onAll(all, (kv) => kv.compact({ revision: 12, physical: true }));
    await expectSameHashKV(all, [0, 11, 12, 13]);

    // Everything deleted after the last compaction, then compacted before the deletes: keep(rev) is
    // empty, and etcd then skips nothing (the values still in the backend below the compaction count).
    await onAll(all, (kv) => kv.put({ key: B('z'), value: B('1') })); // 13
    await onAll(all, (kv) => kv.deleteRange({ key: B('\0'), range_end: B('\0') })); // 14
    await onAll(all, (kv) => kv.compact({ revision: 13, physical: true }));
    await expectSameHashKV(all, [0, 13, 14, 15]);

    // Maintenance.Hash: the engines agree with each other; the revision is etcd's.
    const hashes = await Promise.all(all.map((n) => n.mt.hash()));
    expect(hashes.map((h) => h.header.revision)).toEqual(all.map(() => '14'));
    const plinthHashes = hashes.slice(1).map((h) => h.hash);
    expect(new Set(plinthHashes).size, `Plinth Hash per engine: ${plinthHashes.join(', ')}`).toBe(1);
  });

  it('agrees at every revision of a random history with compactions', { timeout: 180_000 }, async () => {
    const all = await startAll();
    const rnd = prng(0x5eed);
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7'];
    const pick = () => keys[Math.floor(rnd() * keys.length)];
    let rev = 1;
    let compacted = 0;
    const checkpoints: number[] = [];
    for (let step = 0; step < 150; step++) {
      const x = rnd();
      if (x < 0.55) {
        const k = pick();
        rev = await onAll(all, (kv) => kv.put({ key: B(k), value: B(`v${step}`) }));
      } else if (x < 0.7) {
        const k = pick();
        rev = await onAll(all, (kv) => kv.deleteRange({ key: B(k) }));
      } else if (x < 0.75) {
        // A range delete of a few neighbouring keys.
        const i = Math.floor(rnd() * keys.length);
        const end = `k${i + 1 + Math.floor(rnd() * 3)}`;
        rev = await onAll(all, (kv) => kv.deleteRange({ key: B(keys[i]), range_end: B(end) }));
      } else if (x < 0.9) {
        const [k1, k2, k3] = [pick(), pick(), pick()];
        const ops = [put(k1, `t${step}`), ...(k2 !== k1 ? [del(k2)] : []), ...(k3 !== k1 && k3 !== k2 ? [put(k3, `u${step}`)] : [])];
        rev = await onAll(all, (kv) =>
          kv.txn({ compare: [{ key: B(k1), target: 'VERSION', result: 'LESS', version: 3 }], success: ops, failure: [del(k1)] }),
        );
      } else if (rev > compacted + 1) {
        // Compact somewhere between the last compaction and now, sometimes at the current revision.
        const at = rnd() < 0.3 ? rev : compacted + 1 + Math.floor(rnd() * (rev - compacted));
        await onAll(all, (kv) => kv.compact({ revision: at, physical: true }));
        compacted = at;
        await expectSameHashKV(all, [0, compacted, Math.min(compacted + 1, rev), rev]);
        checkpoints.push(compacted);
      }
      if (step % 25 === 24) await expectSameHashKV(all, [0, rev, Math.max(1, rev - 3)]);
    }
    expect(checkpoints.length, 'the sequence compacts a few times').toBeGreaterThanOrEqual(3);
    // Every revision there is, the compacted ones (errors) included.
    await expectSameHashKV(all, [0, ...range(1, rev + 1)]);
  });
});
