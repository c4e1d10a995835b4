import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Errors } from '../../src/errors';
import { Lessor, MAX_LEASE_TTL } from '../../src/lease/lessor';
import { KV } from '../../src/mvcc/kv';
import { KVStore } from '../../src/mvcc/kv-store';
import { openBackend, type Backend } from '../../src/storage';
import { putReq, rangeReq } from '../helpers/stores';

describe('lessor', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
  let clock = 1_000_000;
  const now = () => clock;

  async function open(dir?: string): Promise<{ dir: string; backend: Backend; lessor: Lessor; store: KVStore; kv: KV }> {
    dir ??= mkdtempSync(join(tmpdir(), 'plinth-lessor-'));
    dirs.push(dir);
    const backend = await openBackend('lmdb', { dir });
    const lessor = await Lessor.open(backend, { now });
    const store = await KVStore.open(backend, { leases: lessor });
    return { dir, backend, lessor, store, kv: new KV(store) };
  }

  it('grants with etcd rules: minimum TTL, too large, duplicate id', async () => {
    const { lessor, backend } = await open();
    expect(lessor.grant(1n, 1).ttl).toBe(2);
    expect(lessor.grant(2n, 60).ttl).toBe(60);
    expect(() => lessor.grant(2n, 60)).toThrow(Errors.leaseExist);
    expect(() => lessor.grant(3n, MAX_LEASE_TTL + 1)).toThrow(Errors.leaseTTLTooLarge);
    await backend.close();
  });

  it('finds expired leases in expiry order, skipping renewed and revoked ones', async () => {
    const { lessor, store, backend } = await open();
    for (const [id, ttl] of [[1n, 5], [2n, 3], [3n, 10], [4n, 4]] as const) lessor.grant(id, ttl);
    clock += 4_000;
    expect(lessor.expired(10).map((l) => l.id)).toEqual([2n, 4n]);
    lessor.renew(1n); // lives 5 s more from now
    lessor.revoke(3n, store);
    clock += 4_500;
    expect(lessor.expired(10).map((l) => l.id)).toEqual([]);
    clock += 1_000;
    expect(lessor.expired(10).map((l) => l.id)).toEqual([1n]);
    expect(() => lessor.renew(99n)).toThrow(Errors.leaseNotFound);
    await backend.close();
  });

  it('revokes with every attached key deleted in one revision; puts move keys between leases', async () => {
    const { lessor, kv, backend } = await open();
    lessor.grant(7n, 10);
    lessor.grant(8n, 10);
    kv.put(putReq('a', '1', { lease: 7n }));
    kv.put(putReq('b', '1', { lease: 7n }));
    kv.put(putReq('c', '1', { lease: 7n }));
    kv.put(putReq('c', '2', { lease: 8n })); // moves c to lease 8
    kv.put(putReq('b', '2')); // no lease: detached
    expect([...lessor.lookup(7n)!.keys]).toEqual(['a']);
    const rev = kv.rev;
    lessor.revoke(7n, kv.store);
    expect(kv.rev).toBe(rev + 1);
    expect(kv.range(rangeReq('a')).count).toBe(0);
    expect(kv.range(rangeReq('b')).count).toBe(1);
    expect(kv.range(rangeReq('c')).kvs[0].lease).toBe(8n);
    expect(() => lessor.revoke(7n, kv.store)).toThrow(Errors.leaseNotFound);
    await backend.close();
  });

  it('after a restart: leases and their keys are back, with a full TTL, or the checkpointed remainder', async () => {
    const first = await open();
    first.lessor.grant(1n, 30);
    first.lessor.grant(2n, 30);
    first.kv.put(putReq('x', '1', { lease: 1n }));
    first.kv.put(putReq('y', '1', { lease: 2n }));
    first.kv.deleteRange({ key: Buffer.from('y'), rangeEnd: Buffer.alloc(0), prevKv: false });
    clock += 20_000;
    first.lessor.checkpoint(2n, 10);
    await first.backend.close();
    const again = await open(first.dir);
    expect([...again.lessor.lookup(1n)!.keys]).toEqual(['x']);
    expect([...again.lessor.lookup(2n)!.keys]).toEqual([]);
    expect(again.lessor.remainingSeconds(again.lessor.lookup(1n)!)).toBe(30); // etcd: a new leader renews
    expect(again.lessor.remainingSeconds(again.lessor.lookup(2n)!)).toBe(10); // checkpointed
    await again.backend.close();
  });
});
