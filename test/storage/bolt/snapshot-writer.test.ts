import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openBackend } from '../../../src/storage';
import { BoltDb } from '../../../src/storage/bolt/db';
import { readBoltSnapshot, writeBoltSnapshot } from '../../../src/storage/bolt/snapshot-writer';
import { ETCD_BUCKETS } from '../../../src/storage/etcd-layout';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'plinth-boltsnap-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const B = (s: string) => Buffer.from(s);

describe.each(['bolt', 'memory'] as const)('bbolt snapshot of a %s backend', (kind) => {
  it("holds one state, in etcd's buckets and encodings (an earlier Plinth's records converted), and reads back", async () => {
    const backend = await openBackend(kind, { dir: tmp(), noSync: true });
    for (let i = 0; i < 30_000; i++) backend.put('key', B(`k${String(i).padStart(6, '0')}`), Buffer.alloc(100, i));
    backend.put('lease', Buffer.from('0000000000000007', 'hex'), Buffer.from('000000000000003c000000000000001e', 'hex'));
    backend.put('alarm', Buffer.from('8e9e05c52164694d01', 'hex'), Buffer.alloc(0));
    backend.put('meta', B('consistent_index'), Buffer.alloc(8, 1));
    await backend.commit();
    const file = join(tmp(), 'snap.db');
    const writing = writeBoltSnapshot(backend, file);
    // A write made after the snapshot began is not in it. On bolt its commit does not wait for the
    // snapshot (a read transaction holds the state); on the others commits wait until it is written.
    backend.put('key', B('later'), B('x'));
    let committedFirst = false;
    const commit = backend.commit().then(() => (committedFirst = !done));
    let done = false;
    const info = await writing;
    done = true;
    await commit;
    expect(committedFirst).toBe(kind === 'bolt');
    expect(info.entries).toBe(30_003);

    const db = await BoltDb.open(file, { readOnly: true });
    const names: string[] = [];
    db.view().root.forEach((k) => void names.push(k.toString()));
    expect(names).toEqual([...ETCD_BUCKETS]);
    expect(db.view().bucket(B('lease'))!.get(Buffer.from('0000000000000007', 'hex'))!.toString('hex')).toBe('080710' + '3c' + '18' + '1e');
    expect(db.view().bucket(B('key'))!.get(B('later'))).toBeUndefined();
    await db.close();

    const back = new Map<string, string>();
    await readBoltSnapshot(file, async (bucket, records) => {
      for (const [k, v] of records) back.set(`${bucket}/${k.toString('hex')}`, v.toString('hex'));
    });
    expect(back.size).toBe(30_003);
    // Read back as etcd stores them (Plinth reads etcd's records).
    expect(back.get('lease/0000000000000007')).toBe('080710' + '3c' + '18' + '1e');
    expect(back.get('alarm/08cdd2918bd2b881cf8e011001')).toBe('');
    expect(back.get(`key/${B('k029999').toString('hex')}`)).toBe(Buffer.alloc(100, 29999).toString('hex'));
    await backend.close();
  });
});
