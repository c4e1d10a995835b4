import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BoltEngine } from '../../../src/storage/bolt/bolt-engine';
import { BoltDb } from '../../../src/storage/bolt/db';
import { ETCD_BUCKETS } from '../../../src/storage/etcd-layout';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'plinth-boltengine-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const B = (s: string) => Buffer.from(s);

describe('the bolt engine', () => {
  it("creates etcd 3.4's buckets in <dir>/db", async () => {
    const dir = tmp();
    const e = await BoltEngine.open({ dir });
    await e.close();
    const db = await BoltDb.open(join(dir, 'db'), { readOnly: true });
    const names: string[] = [];
    db.view().root.forEach((k) => void names.push(k.toString()));
    expect(names).toEqual([...ETCD_BUCKETS]);
    await db.close();
  });

  it('readers see the last commit while the next one is being written, then the new one', async () => {
    const e = await BoltEngine.open({ dir: tmp() });
    await e.write([{ bucket: 'key', key: B('k'), value: B('old') }]);
    const big = Array.from({ length: 5000 }, (_, i) => ({ bucket: 'key' as const, key: B(`x${i}`), value: Buffer.alloc(200, i) }));
    const writing = e.write([{ bucket: 'key', key: B('k'), value: B('new') }, ...big]);
    let done = false;
    void writing.then(() => (done = true));
    let seenOld = 0;
    while (!done) {
      // Every read in between is of the old commit: whole, not half.
      if (e.get('key', B('k'))!.toString() === 'old') {
        seenOld++;
        expect(e.get('key', B('x0'))).toBeUndefined();
      } else expect(done).toBe(true);
      await new Promise((r) => setImmediate(r));
    }
    await writing;
    expect(seenOld).toBeGreaterThan(0);
    expect(e.get('key', B('k'))!.toString()).toBe('new');
    expect(e.get('key', B('x4999'))!.length).toBe(200);
    await e.close();
  });

  it('turning freelist sync on writes the freelist at open, as bbolt does, and off drops it', async () => {
    const dir = tmp();
    let e = await BoltEngine.open({ dir, bolt: { freelistSync: false } });
    await e.write(Array.from({ length: 2000 }, (_, i) => ({ bucket: 'key' as const, key: B(`k${i}`), value: Buffer.alloc(100) })));
    await e.write(Array.from({ length: 1000 }, (_, i) => ({ bucket: 'key' as const, key: B(`k${i * 2}`), value: undefined })));
    expect(e.database.meta().freelist).toBe(-1);
    await e.close();
    e = await BoltEngine.open({ dir, bolt: { freelistSync: true } });
    expect(e.database.meta().freelist).toBeGreaterThan(1);
    const free = e.database.freePageCount();
    expect(free).toBeGreaterThan(0);
    await e.close();
    e = await BoltEngine.open({ dir, bolt: { freelistSync: false, freelistType: 'map' } });
    expect(e.database.freePageCount()).toBe(free); // read from the page this time
    await e.write([{ bucket: 'key', key: B('more'), value: B('x') }]);
    expect(e.database.meta().freelist).toBe(-1);
    await e.close();
    e = await BoltEngine.open({ dir });
    expect(e.get('key', B('k1'))!.length).toBe(100);
    expect(e.get('key', B('k0'))).toBeUndefined();
    await e.close();
  });

  it('defragment copies into a smaller file with the same data', async () => {
    const dir = tmp();
    const e = await BoltEngine.open({ dir });
    await e.write(Array.from({ length: 20_000 }, (_, i) => ({ bucket: 'key' as const, key: B(`k${String(i).padStart(6, '0')}`), value: Buffer.alloc(200, i) })));
    await e.write(Array.from({ length: 19_000 }, (_, i) => ({ bucket: 'key' as const, key: B(`k${String(i).padStart(6, '0')}`), value: undefined })));
    await e.write([{ bucket: 'lease', key: Buffer.alloc(8, 1), value: Buffer.alloc(16, 2) }]);
    const before = e.sizeBytes();
    expect(e.sizeInUseBytes()).toBeLessThan(before / 4);
    await e.defragment();
    expect(e.sizeBytes()).toBeLessThan(before / 4);
    let n = 0;
    await e.scan('key', B(''), undefined, (k, v) => {
      expect(v.equals(Buffer.alloc(200, Number(k.toString().slice(1))))).toBe(true);
      n++;
    });
    expect(n).toBe(1000);
    expect(e.get('lease', Buffer.alloc(8, 1))).toEqual(Buffer.alloc(16, 2));
    await e.write([{ bucket: 'key', key: B('after'), value: B('defrag') }]);
    expect(e.get('key', B('after'))!.toString()).toBe('defrag');
    await e.close();
  });
});
