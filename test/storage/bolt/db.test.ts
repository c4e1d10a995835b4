import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BoltDb, SimulatedCrash } from '../../../src/storage/bolt/db';
import { dumpTx } from './helpers';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'plinth-boltdb-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const B = (s: string) => Buffer.from(s);

let seed = 7;
const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);

/** Random puts and deletes (small, large and overflowing values) against a Map, with reopens. */
describe.each(['array', 'map'] as const)('the tree against a model (%s freelist)', (freelistType) => {
  it.each([1, 2, 3, 4, 5, 6])('random commits, reopens and a long-lived reader (seed %i)', async (s) => {
    seed = s * 7919 + 1;
    const file = join(tmp(), 'db');
    const model = new Map<string, Buffer>();
    let db = await BoltDb.open(file, { freelistType, noSync: true });
    let reader: { tx: ReturnType<BoltDb['beginRead']>; snapshot: Map<string, Buffer> } | undefined;
    const check = (b: ReturnType<BoltDb['view']>['root'], want: Map<string, Buffer>, what: string) => {
      let n = 0;
      let prev: Buffer | undefined;
      b.forEach((k, v) => {
        if (prev && Buffer.compare(prev, k) >= 0) expect.fail(`${what}: key ${k} after ${prev}: out of order or twice`);
        prev = Buffer.from(k);
        const w = want.get(k.toString());
        if (!w || !w.equals(v!)) expect.fail(`${what}: key ${k} is ${v!.length} bytes, the model has ${w?.length}`);
        n++;
      });
      expect(n, `${what}: keys`).toBe(want.size);
    };
    for (let round = 0; round < 40; round++) {
      const tx = await db.beginWrite();
      const b = tx.createBucketIfNotExists(B('key'));
      for (let i = rand(300); i > 0; i--) {
        const k = `k${rand(400)}`;
        if (rand(3) === 0) {
          b.delete(B(k));
          model.delete(k);
        } else {
          const v = Buffer.alloc(rand(10) === 0 ? 5000 + rand(20000) : rand(200), rand(256));
          b.put(B(k), v);
          model.set(k, v);
        }
      }
      check(b, model, `round ${round}, in the write transaction`);
      await tx.commit();
      if (round === 8 + s) reader = { tx: db.beginRead(), snapshot: new Map(model) };
      // The registered reader still sees its commit, though later commits reuse freed pages.
      if (reader) check(reader.tx.bucket(B('key'))!, reader.snapshot, `round ${round}, the reader`);
      if (round === 25) {
        reader!.tx.close();
        reader = undefined;
      }
      if (round % 10 === 9 && !reader) {
        await db.close();
        db = await BoltDb.open(file, { freelistType, noSync: true });
      }
      check(db.view().bucket(B('key'))!, model, `round ${round}, committed`);
    }
    const st = db.stats();
    expect(st.freePages + st.pendingPages).toBeGreaterThan(0);
    await db.close();
  });
});

/** A commit whose writes stop part-way (a crash or a torn write) leaves the previous commit. */
describe('torn writes', () => {
  it('at random points of the page and meta writes, the file opens at the last commit', async () => {
    for (let trial = 0; trial < 30; trial++) {
      const file = join(tmp(), 'db');
      let crashAt = -1;
      let writes = 0;
      const target = rand(6);
      const db = await BoltDb.open(file, {
        noSync: true,
        freelistType: trial % 2 ? 'map' : 'array',
        noFreelistSync: trial % 3 === 0,
        faults: ({ bytes }) => {
          if (crashAt < 0 || writes++ !== target) return undefined;
          return rand(bytes + 1); // anything from nothing to all of it, then the machine stops
        },
      });
      let committed = dumpTx(db.view());
      let crashed = false;
      for (let c = 0; c < 8 && !crashed; c++) {
        if (c === 5) crashAt = c;
        const tx = await db.beginWrite();
        const b = tx.createBucketIfNotExists(B(`b${c % 3}`));
        for (let i = 0; i < 50 + rand(400); i++) b.put(B(`k${rand(1000)}`), Buffer.alloc(rand(3) ? 100 : 6000, c));
        if (c > 2) tx.root.bucket(B(`b${(c + 1) % 3}`))?.delete(B(`k${rand(1000)}`));
        try {
          await tx.commit();
          committed = dumpTx(db.view());
        } catch (err) {
          expect(err).toBeInstanceOf(SimulatedCrash);
          crashed = true;
        }
      }
      await db.abandon();
      const again = await BoltDb.open(file, { noSync: true });
      const after = dumpTx(again.view());
      // Either the crashed commit is wholly there (its meta made it) or the previous one is.
      if (JSON.stringify(after) !== JSON.stringify(committed)) {
        expect(crashed, `trial ${trial}: state changed without a crash`).toBe(true);
      }
      expect(again.meta().txid).toBeGreaterThanOrEqual(6);
      // And it is still writable and consistent.
      const tx = await again.beginWrite();
      tx.createBucketIfNotExists(B('after')).put(B('x'), B('y'));
      await tx.commit();
      await again.close();
    }
  });

  it('a meta page torn anywhere falls back to the other meta', async () => {
    const file = join(tmp(), 'db');
    let tear: number | undefined;
    const db = await BoltDb.open(file, { noSync: true, faults: ({ kind }) => (kind === 'meta' ? tear : undefined) });
    const tx = await db.beginWrite();
    tx.createBucketIfNotExists(B('a')).put(B('k'), B('committed'));
    await tx.commit();
    const before = db.meta().txid;
    // The meta's fields are the page's first 80 bytes: any shorter write leaves an invalid checksum.
    for (const n of [0, 1, 16, 40, 70, 79]) {
      tear = n;
      const t = await db.beginWrite();
      t.bucket(B('a'))!.put(B('k'), B('torn'));
      await expect(t.commit()).rejects.toBeInstanceOf(SimulatedCrash);
      const reopened = await BoltDb.open(file, { readOnly: true });
      expect(reopened.meta().txid, `meta torn after ${n} bytes`).toBe(before);
      expect(reopened.view().bucket(B('a'))!.get(B('k'))!.toString()).toBe('committed');
      await reopened.close();
    }
    tear = 80;
    const t = await db.beginWrite();
    t.bucket(B('a'))!.put(B('k'), B('whole meta'));
    await expect(t.commit()).rejects.toBeInstanceOf(SimulatedCrash);
    const reopened = await BoltDb.open(file, { readOnly: true });
    expect(reopened.meta().txid).toBe(before + 1);
    expect(reopened.view().bucket(B('a'))!.get(B('k'))!.toString()).toBe('whole meta');
    await reopened.close();
    await db.abandon();
  });
});

describe('kill -9 while committing', () => {
  const dist = join(__dirname, '..', '..', '..', 'dist', 'src', 'storage', 'bolt', 'db.js');
  it.skipIf(!existsSync(dist))('every acknowledged commit is there after the process is killed at a random instant', async () => {
    const file = join(tmp(), 'db');
    for (let round = 0; round < 4; round++) {
      // Each commit writes a/<i> and b/<i> together and acknowledges i once durable.
      const script = `
        const { BoltDb } = require(${JSON.stringify(dist)});
        (async () => {
          const db = await BoltDb.open(${JSON.stringify(file)}, { freelistType: ${round % 2 ? "'map'" : "'array'"} });
          for (let i = ${round * 100000}; ; i++) {
            const tx = await db.beginWrite();
            const b = tx.createBucketIfNotExists(Buffer.from('key'));
            b.put(Buffer.from('a/' + i), Buffer.alloc(i % 7 ? 200 : 9000, 1));
            b.put(Buffer.from('b/' + i), Buffer.from(String(i)));
            if (i % 3 === 0) b.delete(Buffer.from('a/' + (i - 2)));
            await tx.commit();
            process.stdout.write(i + '\\n');
          }
        })();`;
      const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      // Once it is committing (a loaded machine starts node slowly), kill it at a random instant.
      for (let waited = 0; out.split('\n').length < 4 && waited < 15_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, rand(400)));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const acked = out.split('\n').filter((l) => l !== '').map(Number);
      expect(acked.length, 'commits acknowledged before the kill').toBeGreaterThan(0);
      const db = await BoltDb.open(file, { readOnly: true });
      const b = db.view().bucket(B('key'))!;
      for (const i of acked) expect(b.get(B(`b/${i}`))?.toString(), `acknowledged commit ${i}`).toBe(String(i));
      // Whole commits only: every b/<i> has its a/<i> unless a later commit deleted it.
      b.forEach((k) => {
        const m = /^b\/(\d+)$/.exec(k.toString());
        if (m && (Number(m[1]) + 2) % 3 !== 0) expect(b.get(B(`a/${m[1]}`)), `a/${m[1]}`).toBeDefined();
      });
      await db.close();
    }
  }, 90_000);
});
