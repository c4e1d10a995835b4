import { Backend } from './backend';
import { BoltEngine } from './bolt/bolt-engine';
import type { EngineKind, EngineOptions } from './engine';
import { LevelDbEngine } from './leveldb-engine';
import { LmdbEngine } from './lmdb-engine';
import { MemoryEngine } from './memory-engine';

export { Backend } from './backend';
export { ENGINE_KINDS, type Bucket, type Engine, type EngineKind } from './engine';

/** Opens the engine of the given kind under opts.dir, wrapped in a Backend. */
export async function openBackend(kind: EngineKind, opts: EngineOptions): Promise<Backend> {
  switch (kind) {
    case 'lmdb':
      return new Backend(new LmdbEngine(opts));
    case 'leveldb':
      return new Backend(await LevelDbEngine.open(opts));
    case 'memory':
      return new Backend(new MemoryEngine());
    case 'bolt':
      return new Backend(await BoltEngine.open(opts));
  }
}
