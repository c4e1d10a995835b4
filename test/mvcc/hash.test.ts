import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Errors } from '../../src/errors';
import { crc32c, Crc32c, crc32cCombine, hashBackend, hashKV } from '../../src/mvcc/hash';
import { revisionBytes } from '../../src/mvcc/revision';
import { BUCKETS } from '../../src/storage/engine';
import { b, ENGINE_KINDS, putReq, TestStore } from '../helpers/stores';

/** Bit-at-a-time CRC-32C, the textbook definition, to check the table-driven one against. */
function crc32cBitwise(buf: Uint8Array): number {
  let c = ~0;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

describe('crc32c', () => {
  it('gives the known check values', () => {
    expect(crc32c('123456789')).toBe(0xe3069283);
    expect(crc32c('')).toBe(0);
    expect(crc32c('a')).toBe(0xc1d04330);
    // RFC 3720 (iSCSI) B.4
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)))).toBe(0x113fdb5c);
  });

  it('agrees with the bitwise definition at every length and offset', () => {
    const data = randomBytes(600);
    for (let len = 0; len <= 70; len++) {
      for (const off of [0, 1, 3, 7]) {
        const part = data.subarray(off, off + len);
        expect(crc32c(part)).toBe(crc32cBitwise(part));
      }
    }
    expect(crc32c(data)).toBe(crc32cBitwise(data));
  });

  it('continues a CRC across writes, as Go crc32.Update and hash.Hash32', () => {
    const data = randomBytes(1000);
    const whole = crc32c(data);
    for (const cut of [0, 1, 5, 8, 9, 500, 999, 1000]) {
      expect(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut)))).toBe(whole);
      const h = new Crc32c().write(data.subarray(0, cut)).write(data.subarray(cut));
      expect(h.sum32()).toBe(whole);
      expect(h.length).toBe(1000);
    }
  });

  it('combines the CRCs of two parts into the CRC of both', () => {
    const data = randomBytes(5000);
    for (const cut of [0, 1, 2, 7, 64, 1000, 4999, 5000]) {
      const a = data.subarray(0, cut);
      const c = data.subarray(cut);
      expect(crc32cCombine(crc32c(a), crc32c(c), c.length)).toBe(crc32c(data));
    }
  });

  it('is fast enough for a large key bucket', () => {
    const data = randomBytes(32 << 20);
    const t0 = Date.now();
    crc32c(data);
    // ~32 MB: well under a second even on a slow machine (slicing-by-8 runs at several hundred MB/s).
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

const del = (key: string) => ({ key: b(key), rangeEnd: Buffer.alloc(0), prevKv: false });

describe.each(ENGINE_KINDS)('hashKV on %s', (kind) => {
  let t: TestStore;
  beforeEach(async () => {
    t = await new TestStore(kind, { compaction: { batchLimit: 2, sleepMs: 0 } }).open();
  });
  afterEach(async () => {
    await t.close();
  });

  /** The CRC etcd's hashByRev gives when it hashes exactly these key-bucket entries. */
  const expected = (...revs: [number, number, boolean?][]) => {
    const h = new Crc32c().write(b('key'));
    for (const [main, sub, tomb] of revs) {
      const k = revisionBytes(main, sub, tomb);
      const v = t.backend.get('key', k);
      if (!v) throw new Error(`revision ${main}/${sub} not in the backend`);
      h.write(k).write(v);
    }
    return h.sum32();
  };

  it('hashes just the bucket name in an empty store', async () => {
    expect(await hashKV(t.store, 0)).toEqual({ hash: crc32c('key'), compactRevision: -1, revision: 1 });
    expect(await hashKV(t.store, 1)).toEqual({ hash: crc32c('key'), compactRevision: -1, revision: 1 });
  });

  it('hashes every revision up to rev, in key order; rev 0 is the current revision', async () => {
    t.kv.put(putReq('a', '1')); // 2
    t.kv.put(putReq('b', '1')); // 3
    t.kv.txn({ compare: [], success: [{ put: putReq('c', '1') }, { deleteRange: del('a') }], failure: [] }); // 4/0, 4/1
    t.kv.put(putReq('a', '2')); // 5
    expect(await hashKV(t.store, 0)).toEqual({
      hash: expected([2, 0], [3, 0], [4, 0], [4, 1, true], [5, 0]), compactRevision: -1, revision: 5,
    });
    expect((await hashKV(t.store, 5)).hash).toBe((await hashKV(t.store, 0)).hash);
    expect(await hashKV(t.store, 3)).toEqual({ hash: expected([2, 0], [3, 0]), compactRevision: -1, revision: 5 });
    expect((await hashKV(t.store, 4)).hash).toBe(expected([2, 0], [3, 0], [4, 0], [4, 1, true]));
  });

  it('changes with each write, and not for a past revision', async () => {
    const seen = new Set<number>();
    const past: number[] = [];
    for (let i = 0; i < 20; i++) {
      t.kv.put(putReq(`k${i % 3}`, `v${i}`));
      const { hash, revision } = await hashKV(t.store, 0);
      expect(seen.has(hash)).toBe(false);
      seen.add(hash);
      past[revision] = hash;
    }
    t.kv.deleteRange(del('k1'));
    expect(seen.has((await hashKV(t.store, 0)).hash)).toBe(false);
    for (let rev = 2; rev <= 21; rev++) expect((await hashKV(t.store, rev)).hash).toBe(past[rev]);
  });

  it('refuses compacted and future revisions as etcd; a negative one hashes nothing', async () => {
    for (let i = 0; i < 6; i++) t.kv.put(putReq('a', `${i}`)); // 2..7
    await expect(hashKV(t.store, 8)).rejects.toBe(Errors.futureRev);
    await t.kv.compact(4).done;
    await expect(hashKV(t.store, 4)).rejects.toBe(Errors.compacted);
    await expect(hashKV(t.store, 1)).rejects.toBe(Errors.compacted);
    await expect(hashKV(t.store, 99)).rejects.toBe(Errors.futureRev);
    expect(await hashKV(t.store, 5)).toMatchObject({ compactRevision: 4, revision: 7 });
    expect(await hashKV(t.store, -1)).toEqual({ hash: crc32c('key'), compactRevision: 4, revision: 7 });
  });

  it('after a compaction, leaves out the revisions at or below it that keep(rev) does not name', async () => {
    t.kv.put(putReq('a', '1')); // 2
    t.kv.put(putReq('a', '2')); // 3
    t.kv.put(putReq('b', '1')); // 4
    t.kv.deleteRange(del('a')); // 5
    const compacted = t.kv.compact(4).done;
    // keep(5) = {b@4}: a@3 is still in the backend (a was live at 4) but a was deleted by 5.
    const during = await hashKV(t.store, 0);
    await compacted;
    expect(t.backend.get('key', revisionBytes(3, 0))).toBeDefined();
    expect(t.backend.get('key', revisionBytes(2, 0))).toBeUndefined();
    const want = expected([4, 0], [5, 0, true]);
    expect(during).toEqual({ hash: want, compactRevision: 4, revision: 5 });
    expect(await hashKV(t.store, 0)).toEqual(during);
    // keep(5) at revision 5 itself: a@5's tombstone is above the compaction, so it counts.
    expect((await hashKV(t.store, 5)).hash).toBe(want);
  });

  it('skips nothing when keep(rev) is empty (etcd: len(keep) > 0)', async () => {
    t.kv.put(putReq('a', '1')); // 2
    t.kv.deleteRange(del('a')); // 3
    t.kv.put(putReq('b', '1')); // 4
    t.kv.deleteRange(del('b')); // 5
    await t.kv.compact(4).done;
    // Left in the backend: b@4 (b was live at 4) and b's tombstone; keep(5) is empty, so both count.
    expect(t.backend.get('key', revisionBytes(2, 0))).toBeUndefined();
    expect((await hashKV(t.store, 0)).hash).toBe(expected([4, 0], [5, 0, true]));
  });

  it('is the same after a restart, before and after compaction', async () => {
    for (let i = 0; i < 40; i++) {
      if (i % 7 === 6) t.kv.deleteRange(del(`k${i % 5}`));
      else t.kv.put(putReq(`k${i % 5}`, `v${i}`));
    }
    t.kv.txn({ compare: [], success: [{ put: putReq('k9', 'x') }, { deleteRange: del('k0') }, { put: putReq('k0', 'y') }], failure: [] });
    const revs = [0, 10, 20, 30, 41];
    const before = await Promise.all(revs.map((r) => hashKV(t.store, r)));
    await t.reopen();
    expect(await Promise.all(revs.map((r) => hashKV(t.store, r)))).toEqual(before);

    await t.kv.compact(25).done;
    const after = await Promise.all([0, 26, 33, 41].map((r) => hashKV(t.store, r)));
    expect(after.every((h) => h.compactRevision === 25)).toBe(true);
    await t.reopen();
    expect(await Promise.all([0, 26, 33, 41].map((r) => hashKV(t.store, r)))).toEqual(after);
  });

  it('gives every engine the same hashes for the same history', async () => {
    const results: unknown[] = [];
    for (const k of ENGINE_KINDS) {
      const s = await new TestStore(k).open();
      try {
        for (let i = 0; i < 30; i++) s.kv.put(putReq(`k${i % 4}`, `v${i}`, { lease: 0n }));
        s.kv.deleteRange(del('k2'));
        await s.kv.compact(20).done;
        s.kv.put(putReq('k2', 'back'));
        results.push(await Promise.all([0, 20 + 1, 25, 32].map((r) => hashKV(s.store, r))));
      } finally {
        await s.close();
      }
    }
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);
  });
});

describe.each(ENGINE_KINDS)('hashBackend on %s', (kind) => {
  let t: TestStore;
  beforeEach(async () => {
    t = await new TestStore(kind).open();
  });
  afterEach(async () => {
    await t.close();
  });

  /** etcd's backend.Hash written out plainly: buckets in name order, one CRC through all of them. */
  async function plainHash(): Promise<number> {
    const names = [...BUCKETS].sort((x, y) => Buffer.compare(b(x), b(y)));
    const h = new Crc32c();
    for (const name of names) {
      h.write(b(name));
      await t.backend.scan(name, Buffer.alloc(0), undefined, (k, v) => {
        if (name === 'meta' && k.toString() === 'consistent_index') return;
        h.write(k).write(v);
      });
    }
    return h.sum32();
  }

  it('hashes every bucket in name order, leaving out the consistent index', async () => {
    expect(await hashBackend(t.backend)).toBe(await plainHash());
    t.kv.put(putReq('a', '1'));
    t.kv.put(putReq('b', '2'));
    t.backend.put('alarm', b('some-alarm'), Buffer.alloc(0));
    t.backend.put('lease', b('L'), b('lease-bytes'));
    await t.kv.compact(2).done;
    const h = await hashBackend(t.backend);
    expect(h).toBe(await plainHash());
    t.backend.put('meta', b('consistent_index'), Buffer.alloc(8, 7));
    expect(await hashBackend(t.backend)).toBe(h);
    t.kv.put(putReq('a', '3'));
    expect(await hashBackend(t.backend)).not.toBe(h);
    expect(await hashBackend(t.backend)).toBe(await plainHash());
  });

  it('is stable across a restart', async () => {
    for (let i = 0; i < 20; i++) t.kv.put(putReq(`k${i % 3}`, `v${i}`));
    await t.kv.compact(10).done;
    const h = await hashBackend(t.backend);
    await t.reopen();
    expect(await hashBackend(t.backend)).toBe(h);
  });
});
