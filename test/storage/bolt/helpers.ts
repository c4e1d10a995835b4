import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bucket } from '../../../src/storage/bolt/bucket';
import type { Tx } from '../../../src/storage/bolt/tx';

/** One key as the Go checker prints it: hex key, hex value or a nested bucket. */
export interface DumpEntry {
  k: string;
  v?: string;
  b?: DumpEntry[];
  isBucket?: boolean;
}

export function walk(b: Bucket): DumpEntry[] {
  const out: DumpEntry[] = [];
  const c = b.cursor();
  for (let e = c.first(); e; e = c.next()) {
    if (e.value === undefined) {
      const child = b.bucket(e.key)!;
      const inner = walk(child);
      out.push(inner.length ? { k: e.key.toString('hex'), b: inner, isBucket: true } : { k: e.key.toString('hex'), isBucket: true });
    } else out.push(e.value.length ? { k: e.key.toString('hex'), v: e.value.toString('hex') } : { k: e.key.toString('hex') });
  }
  return out;
}

/** Every top-level bucket of a transaction, as the Go checker's "buckets". */
export function dumpTx(tx: Tx): DumpEntry[] {
  return walk(tx.root).map((e) => ({ ...e, b: e.b ?? undefined }));
}

/** Drops empty fields so Go's omitempty output and ours compare equal. */
export function normalise(entries: DumpEntry[] | null | undefined): DumpEntry[] {
  return (entries ?? []).map((e) => {
    const out: DumpEntry = { k: e.k };
    if (e.v) out.v = e.v;
    if (e.isBucket) out.isBucket = true;
    if (e.b && e.b.length) out.b = normalise(e.b);
    return out;
  });
}

const GOCHECK_SRC = join(__dirname, 'gocheck', 'main.go');
const BBOLT_SRC = '/usr/share/gocode/src/go.etcd.io/bbolt';

/**
 * Builds the Go checker against Debian's bbolt source (GOPATH mode, offline). Returns its path, or the
 * reason it cannot be built (the tests that need it are then skipped, saying why).
 */
export function buildGoCheck(): { bin?: string; why?: string } {
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (go.status !== 0) return { why: 'go is not installed (apt-get install golang-go)' };
  if (!existsSync(join(BBOLT_SRC, 'db.go'))) return { why: `bbolt's source is not at ${BBOLT_SRC} (apt-get install golang-etcd-server-dev)` };
  const dir = mkdtempSync(join(tmpdir(), 'plinth-gocheck-'));
  copyFileSync(GOCHECK_SRC, join(dir, 'main.go'));
  const bin = join(dir, 'boltcheck');
  const r = spawnSync('go', ['build', '-o', bin, '.'], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOFLAGS: '', GOPROXY: 'off', GOCACHE: process.env.GOCACHE ?? join(tmpdir(), 'plinth-gocache') },
  });
  if (r.status !== 0) throw new Error(`building the Go checker failed:\n${r.stderr}`);
  return { bin };
}

export interface GoDump {
  buckets: DumpEntry[] | null;
  txid: number;
  size: number;
  stats: { Depth: number; InlineBuckets: number; LeafOverflow: number; BranchPages: number; Keys: number };
}

/** Runs the checker; throws with its stderr (tx.Check's errors) when it fails. */
export function goCheck(bin: string, args: string[]): GoDump {
  const r = spawnSync(bin, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`boltcheck ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as GoDump;
}
