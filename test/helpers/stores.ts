import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KV } from '../../src/mvcc/kv';
import { KVStore, type StoreOptions } from '../../src/mvcc/kv-store';
import type { PutRequest, RangeRequest } from '../../src/mvcc/types';
import { ENGINE_KINDS, openBackend, type Backend, type EngineKind } from '../../src/storage';

export { ENGINE_KINDS };

/** A store on a fresh directory for one engine; reopen() simulates a restart on the same data. */
export class TestStore {
  backend!: Backend;
  store!: KVStore;
  kv!: KV;
  private readonly dir: string;
  // The memory engine has no files; a restart keeps its engine object instead.
  private memoryEngine: Backend['engine'] | undefined;

  constructor(readonly kind: EngineKind, private readonly opts: StoreOptions = {}) {
    this.dir = mkdtempSync(join(tmpdir(), `plinth-mvcc-${kind}-`));
  }

  async open(): Promise<this> {
    if (this.kind === 'memory' && this.memoryEngine) {
      const { Backend } = await import('../../src/storage/backend');
      this.backend = new Backend(this.memoryEngine);
    } else {
      this.backend = await openBackend(this.kind, { dir: this.dir });
      if (this.kind === 'memory') this.memoryEngine = this.backend.engine;
    }
    this.store = await KVStore.open(this.backend, this.opts);
    this.kv = new KV(this.store);
    return this;
  }

  async reopen(): Promise<void> {
    await this.backend.commit();
    if (this.kind !== 'memory') await this.backend.close();
    await this.open();
  }

  async close(): Promise<void> {
    await this.backend.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export const b = (s: string): Buffer => Buffer.from(s);

export function rangeReq(key: string, over: Partial<RangeRequest> & { end?: string } = {}): RangeRequest {
  const { end, ...rest } = over;
  return {
    key: b(key), rangeEnd: end === undefined ? Buffer.alloc(0) : end === '\0' ? Buffer.from([0]) : b(end),
    limit: 0, revision: 0, sortOrder: 0, sortTarget: 0, serializable: false, keysOnly: false, countOnly: false,
    minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0, ...rest,
  };
}

export function putReq(key: string, value: string, over: Partial<PutRequest> = {}): PutRequest {
  return { key: b(key), value: b(value), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false, ...over };
}

/** "\xff"-safe prefix end, as clientv3.GetPrefixRangeEnd. */
export function prefixEnd(prefix: string): string {
  const buf = b(prefix);
  for (let i = buf.length - 1; i >= 0; i--) {
    if (buf[i] < 0xff) {
      buf[i]++;
      return buf.subarray(0, i + 1).toString('latin1');
    }
  }
  return '\0';
}
