import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Backend, ENGINE_KINDS, openBackend } from '../../src/storage';
import type { Engine, WriteOp } from '../../src/storage/engine';
import { MemoryEngine } from '../../src/storage/memory-engine';

const b = (s: string) => Buffer.from(s);

describe.each(ENGINE_KINDS)('backend on %s', (kind) => {
  const dirs: string[] = [];
  const open = async () => {
    const dir = mkdtempSync(join(tmpdir(), `plinth-backend-${kind}-`));
    dirs.push(dir);
    return { dir, backend: await openBackend(kind, { dir }) };
  };
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('reads its own writes before and after commit, and deletes', async () => {
    const { backend } = await open();
    backend.put('key', b('k1'), b('v1'));
    backend.put('meta', b('k1'), b('m1'));
    expect(backend.get('key', b('k1'))).toEqual(b('v1'));
    expect(backend.get('meta', b('k1'))).toEqual(b('m1')); // buckets are apart
    await backend.commit();
    expect(backend.engine.get('key', b('k1'))).toEqual(b('v1'));
    backend.delete('key', b('k1'));
    expect(backend.get('key', b('k1'))).toBeUndefined();
    await backend.commit();
    expect(backend.engine.get('key', b('k1'))).toBeUndefined();
    await backend.close();
  });

  it('scans a bucket in byte order within [start, end), stopping when asked', async () => {
    const { backend } = await open();
    for (const k of ['c', 'a', 'b\x00', 'b', '\xff', 'd']) backend.put('key', Buffer.from(k, 'latin1'), b(k));
    backend.put('meta', b('zz'), b('other bucket'));
    const seen: string[] = [];
    await backend.scan('key', b('b'), b('d'), (k) => void seen.push(k.toString('latin1')));
    expect(seen).toEqual(['b', 'b\x00', 'c']);
    const all: string[] = [];
    await backend.scan('key', Buffer.alloc(0), undefined, (k) => all.push(k.toString('latin1')) < 2);
    expect(all).toEqual(['a', 'b']);
    await backend.close();
  });

  it('scans committed keys only, without committing, in the same order', async () => {
    const { backend } = await open();
    for (const k of ['c', 'a', 'b\x00', 'b', '\xff', 'd']) backend.put('key', Buffer.from(k, 'latin1'), b(k));
    backend.put('meta', b('zz'), b('other bucket'));
    await backend.commit();
    backend.put('key', b('bb'), b('pending, not committed'));
    backend.delete('key', b('c'));
    const seen: string[] = [];
    await backend.scanCommittedKeys('key', b('b'), b('d'), (k) => void seen.push(k.toString('latin1')));
    expect(seen).toEqual(['b', 'b\x00', 'c']);
    expect(backend.pendingWrites).toBe(2);
    const all: string[] = [];
    await backend.scanCommittedKeys('key', Buffer.alloc(0), undefined, (k) => all.push(k.toString('latin1')) < 6);
    expect(all).toEqual(['a', 'b', 'b\x00', 'c', 'd', '\xff']);
    await backend.close();
  });

});

describe.each(['lmdb', 'leveldb'] as const)('backend on disk (%s)', (kind) => {
  it('keeps committed data across a reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), `plinth-backend-${kind}-`));
    const backend = await openBackend(kind, { dir });
    backend.put('key', b('durable'), b('yes'));
    await backend.close();
    const again = await openBackend(kind, { dir });
    expect(again.get('key', b('durable'))).toEqual(b('yes'));
    await again.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

/** An engine whose writes finish only when the test says so. */
class GatedEngine implements Engine {
  readonly kind = 'memory' as const;
  readonly inner = new MemoryEngine();
  writes: WriteOp[][] = [];
  private release: (() => void)[] = [];
  get = (bucket: any, key: Buffer) => this.inner.get(bucket, key);
  scan = this.inner.scan.bind(this.inner);
  scanKeys = this.inner.scanKeys.bind(this.inner);
  sizeBytes = () => this.inner.sizeBytes();
  sizeInUseBytes = () => this.inner.sizeInUseBytes();
  close = () => this.inner.close();
  defragment = () => this.inner.defragment();
  write(ops: readonly WriteOp[]): Promise<void> {
    this.writes.push([...ops]);
    return new Promise((r) => this.release.push(() => this.inner.write(ops).then(r)));
  }
  finishOne(): void {
    this.release.shift()!();
  }
}

describe('backend group commit', () => {
  it('gathers the writes made during one engine commit into the next one', async () => {
    const engine = new GatedEngine();
    const backend = new Backend(engine);
    backend.put('key', b('1'), b('a'));
    const first = backend.commit();
    backend.put('key', b('2'), b('b'));
    const second = backend.commit();
    backend.put('key', b('3'), b('c'));
    const third = backend.commit();
    expect(second).toBe(third); // both wait for the same next commit
    expect(engine.writes).toHaveLength(1);
    // While the first commit is in flight, its writes are still readable.
    expect(backend.get('key', b('1'))).toEqual(b('a'));
    engine.finishOne();
    await first;
    await new Promise((r) => setImmediate(r));
    expect(engine.writes).toHaveLength(2);
    expect(engine.writes[1].map((op) => op.key.toString())).toEqual(['2', '3']);
    engine.finishOne();
    await Promise.all([second, third]);
    expect(backend.commits).toBe(2);
    expect(engine.inner.get('key', b('3'))).toEqual(b('c'));
  });

  it('keeps a batch the engine refused, readable, and commits it on the next try', async () => {
    const engine = new MemoryEngine();
    const backend = new Backend(engine);
    await backend.commit(); // nothing pending: resolves at once
    const write = engine.write.bind(engine);
    let full = true;
    engine.write = (ops) => (full ? Promise.reject(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' })) : write(ops));
    const outcomes: boolean[] = [];
    backend.afterCommit = (ok) => outcomes.push(ok);
    backend.put('key', b('x'), b('1'));
    await expect(backend.commit()).rejects.toThrow(/no space left/);
    backend.put('key', b('y'), b('2'));
    backend.put('key', b('x'), b('3')); // a later write of the same key wins
    expect(backend.get('key', b('x'))).toEqual(b('3'));
    expect(backend.get('key', b('y'))).toEqual(b('2'));
    expect(engine.get('key', b('x'))).toBeUndefined();
    full = false;
    await backend.commit();
    expect(engine.get('key', b('x'))).toEqual(b('3'));
    expect(engine.get('key', b('y'))).toEqual(b('2'));
    expect(outcomes).toEqual([false, true]);
  });
});
