import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BoltDb } from '../../../src/storage/bolt/db';
import type { FreelistType } from '../../../src/storage/bolt/freelist';
import { buildGoCheck, dumpTx, goCheck, normalise } from './helpers';

// Format tests against bbolt itself: files Plinth writes pass bbolt's tx.Check() and read back equal
// through bbolt's cursors; files bbolt writes read equal through Plinth's, and stay valid for bbolt
// after Plinth has written to them.

const go = buildGoCheck();
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'plinth-boltfmt-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const key = (i: number) => Buffer.from(`key-${String(i).padStart(6, '0')}`);

/** A file with everything the format has: branch pages, overflow pages, nested and inline buckets, a freelist. */
async function writeWithPlinth(file: string, freelistType: FreelistType, freelistSync: boolean): Promise<void> {
  const db = await BoltDb.open(file, { freelistType, noFreelistSync: !freelistSync, noSync: true });
  let tx = await db.beginWrite();
  const big = tx.createBucketIfNotExists(Buffer.from('big'));
  for (let i = 0; i < 5000; i++) big.put(key(i), Buffer.alloc(50 + (i % 200), 48 + (i % 10)));
  big.put(Buffer.from('overflow'), Buffer.alloc(20_000, 'o'));
  const small = tx.createBucketIfNotExists(Buffer.from('small'));
  small.put(Buffer.from('a'), Buffer.from('1'));
  small.put(Buffer.from('empty'), Buffer.alloc(0));
  const nested = big.createBucket(Buffer.from('nested'));
  for (let i = 0; i < 300; i++) nested.put(key(i), Buffer.from('n'));
  nested.createBucket(Buffer.from('inner')).put(Buffer.from('x'), Buffer.from('y'));
  await tx.commit();
  tx = await db.beginWrite();
  const b = tx.bucket(Buffer.from('big'))!;
  for (let i = 0; i < 5000; i += 3) b.delete(key(i));
  b.put(Buffer.from('overflow'), Buffer.alloc(9000, 'p')); // a smaller overflow run reuses freed pages
  await tx.commit();
  tx = await db.beginWrite();
  tx.root.deleteBucket(Buffer.from('small'));
  tx.createBucketIfNotExists(Buffer.from('small')).put(Buffer.from('again'), Buffer.from('z'));
  await tx.commit();
  await db.close();
}

describe.skipIf(!go.bin)(`bbolt's Go code reads Plinth's files${go.why ? ` (skipped: ${go.why})` : ''}`, () => {
  it.each([
    ['array', true],
    ['array', false],
    ['map', true],
    ['map', false],
  ] as const)('freelist %s, freelist sync %s: tx.Check() passes, every key equal', async (type, sync) => {
    const file = join(tmp(), 'db');
    await writeWithPlinth(file, type, sync);
    const got = goCheck(go.bin!, ['check', file]);
    const db = await BoltDb.open(file, { readOnly: true });
    const mine = dumpTx(db.view());
    expect(normalise(got.buckets)).toEqual(normalise(mine));
    expect(got.txid).toBe(db.meta().txid);
    expect(got.stats.LeafOverflow).toBeGreaterThan(0);
    expect(got.stats.BranchPages).toBeGreaterThan(0);
    expect(got.stats.InlineBuckets).toBeGreaterThan(0);
    expect(got.stats.Depth).toBeGreaterThan(2);
    await db.close();
  });
});

describe.skipIf(!go.bin)(`Plinth reads bbolt's files${go.why ? ` (skipped: ${go.why})` : ''}`, () => {
  it.each([
    ['plain', 'array'],
    ['plain', 'map'],
    ['nofreelist', 'array'],
    ['map', 'map'],
  ] as const)('written by bbolt (%s), read with the %s freelist, then written by Plinth and checked by bbolt again', async (mode, type) => {
    const file = join(tmp(), 'db');
    const written = goCheck(go.bin!, ['write', file, mode]);
    const db = await BoltDb.open(file, { freelistType: type, noSync: true, noFreelistSync: mode === 'nofreelist' });
    expect(normalise(dumpTx(db.view()))).toEqual(normalise(written.buckets));
    expect(db.meta().txid).toBe(written.txid);
    // Plinth writes on top: reuses bbolt's free pages, grows, deletes.
    const tx = await db.beginWrite();
    const big = tx.bucket(Buffer.from('big'))!;
    for (let i = 1; i < 5000; i += 3) big.delete(key(i));
    for (let i = 0; i < 2000; i++) big.put(Buffer.from(`plinth-${i}`), Buffer.alloc(300, 'q'));
    big.bucket(Buffer.from('nested'))!.put(Buffer.from('from-plinth'), Buffer.from('yes'));
    await tx.commit();
    const after = dumpTx(db.view());
    await db.close();
    const again = goCheck(go.bin!, ['check', file]);
    expect(normalise(again.buckets)).toEqual(normalise(after));
  });

  it('a file bbolt opened read-write and updated (as etcd would) reads back in Plinth', async () => {
    const file = join(tmp(), 'db');
    await writeWithPlinth(file, 'array', false);
    const updated = goCheck(go.bin!, ['update', file]);
    const db = await BoltDb.open(file, { readOnly: true });
    expect(normalise(dumpTx(db.view()))).toEqual(normalise(updated.buckets));
    await db.close();
  });
});

describe.skipIf(!go.bin)(`bbolt checks files from random workloads${go.why ? ` (skipped: ${go.why})` : ''}`, () => {
  it.each([
    [1, 'array', false],
    [2, 'map', true],
    [3, 'array', true],
    [4, 'map', false],
  ] as const)('seed %i, %s freelist, freelist sync %s: puts, deletes, nested buckets made and dropped, reopens', async (s, freelistType, sync) => {
    let seed = s;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const file = join(tmp(), 'db');
    let db = await BoltDb.open(file, { freelistType, noFreelistSync: !sync, noSync: true });
    for (let round = 0; round < 30; round++) {
      const tx = await db.beginWrite();
      for (let i = rand(200) + 1; i > 0; i--) {
        const top = tx.createBucketIfNotExists(Buffer.from(`b${rand(4)}`));
        // Sometimes a nested bucket (inline while small), sometimes the top bucket itself.
        const b = rand(4) === 0 ? top.createBucketIfNotExists(Buffer.from(`n${rand(3)}`)) : top;
        const k = Buffer.from(`k${rand(500)}`);
        const r = rand(10);
        if (r < 3) {
          if (b.bucket(k)) b.deleteBucket(k);
          else b.delete(k);
        }
        else if (r === 3 && b.get(k) === undefined && b.bucket(k) === undefined) b.createBucket(k).put(Buffer.from('x'), Buffer.alloc(rand(100)));
        else if (b.bucket(k) === undefined) b.put(k, Buffer.alloc(rand(12) === 0 ? 4096 + rand(12000) : rand(300), rand(256)));
      }
      if (rand(8) === 0) {
        const name = Buffer.from(`b${rand(4)}`);
        if (tx.bucket(name)) tx.root.deleteBucket(name);
      }
      await tx.commit();
      if (rand(6) === 0) {
        await db.close();
        db = await BoltDb.open(file, { freelistType, noFreelistSync: !sync, noSync: true });
      }
    }
    const mine = dumpTx(db.view());
    await db.close();
    const got = goCheck(go.bin!, ['check', file]);
    expect(normalise(got.buckets)).toEqual(normalise(mine));
  });
});
