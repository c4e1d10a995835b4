import { Errors } from '../errors';
import { hashRevSeconds, hashSeconds, timed } from '../metrics';
import { REJECTED_CONF_CHANGE_PREFIX } from '../storage/etcd-layout';
import type { Backend } from '../storage';
import { BUCKETS, type Bucket } from '../storage/engine';
import type { KeyIndex } from './key-index';
import type { KVStore } from './kv-store';
import { REV_BYTES } from './revision';

// Maintenance.Hash and Maintenance.HashKV, as etcd 3.4 computes them (mvcc/kvstore.go hashByRev and
// Hash, mvcc/backend/backend.go Hash): CRC-32C (Castagnoli) over the raw bytes of the backend. The key
// bucket has etcd's exact layout (revision.ts, key-value.ts), so the same history hashes the same.

// ---------------------------------------------------------------------------------------------
// CRC-32C

/** The Castagnoli polynomial, reflected (Go's crc32.Castagnoli). */
const POLY = 0x82f63b78;

/** Slicing-by-8 tables: T[0] is the classic byte table, T[k][i] = CRC of byte i followed by k zero bytes. */
const T = Array.from({ length: 8 }, () => new Int32Array(256));
for (let i = 0; i < 256; i++) {
  let c = i;
  for (let j = 0; j < 8; j++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[0][i] = c;
}
for (let i = 0; i < 256; i++) {
  for (let k = 1; k < 8; k++) T[k][i] = (T[k - 1][i] >>> 8) ^ T[0][T[k - 1][i] & 0xff];
}
const [T0, T1, T2, T3, T4, T5, T6, T7] = T;

/** Runs the raw (pre- and post-inverted by the caller) CRC register over buf[start, end). */
function crcRegister(c: number, buf: Uint8Array, start: number, end: number): number {
  let i = start;
  for (; i + 8 <= end; i += 8) {
    c ^= buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24);
    c = T7[c & 0xff] ^ T6[(c >>> 8) & 0xff] ^ T5[(c >>> 16) & 0xff] ^ T4[c >>> 24]
      ^ T3[buf[i + 4]] ^ T2[buf[i + 5]] ^ T1[buf[i + 6]] ^ T0[buf[i + 7]];
  }
  for (; i < end; i++) c = (c >>> 8) ^ T0[(c ^ buf[i]) & 0xff];
  return c;
}

/**
 * CRC-32C of buf, continuing from crc (the CRC of the bytes before it; 0 to start), as Go's
 * crc32.Update(crc, crc32.MakeTable(crc32.Castagnoli), buf): crc32c(b, crc32c(a)) = crc32c(a ++ b).
 */
export function crc32c(buf: Uint8Array | string, crc = 0): number {
  const b = typeof buf === 'string' ? Buffer.from(buf) : buf;
  return ~crcRegister(~crc, b, 0, b.length) >>> 0;
}

/** An incremental CRC-32C, as Go's hash.Hash32 from crc32.New(castagnoli). */
export class Crc32c {
  private reg = ~0;
  /** Bytes written so far. */
  length = 0;

  write(buf: Uint8Array): this {
    this.reg = crcRegister(this.reg, buf, 0, buf.length);
    this.length += buf.length;
    return this;
  }

  sum32(): number {
    return ~this.reg >>> 0;
  }
}

/** a(x)·b(x) mod P(x), reflected (zlib's multmodp); a must not be 0. */
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** X2N[k] = x^(2^k) mod P(x). */
const X2N: number[] = [0x40000000];
for (let k = 1; k < 32; k++) X2N.push(multModP(X2N[k - 1], X2N[k - 1]));

/** x^(n·2^k) mod P(x). */
function x2nModP(n: number, k: number): number {
  let p = 0x80000000; // x^0
  while (n > 0) {
    if (n % 2 === 1) p = multModP(X2N[k & 31], p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}

/** CRC-32C of a ++ b from crc32c(a), crc32c(b) and b's length (zlib's crc32_combine). */
export function crc32cCombine(crcA: number, crcB: number, lengthB: number): number {
  if (lengthB <= 0) return crcA >>> 0;
  return (multModP(x2nModP(lengthB, 3), crcA >>> 0) ^ crcB) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// HashKV

const KEY_BUCKET = Buffer.from('key');

export interface HashKVResult {
  /** CRC-32C of the key bucket up to the revision (HashKVResponse.hash). */
  hash: number;
  /** The store's compaction revision, -1 if never compacted (HashKVResponse.compact_revision). */
  compactRevision: number;
  /** The store's current revision when the hash was taken (the response header's revision). */
  revision: number;
}

/**
 * etcd's keyIndex.keep(atRev) without changing the index: the revision compact(atRev) would keep of
 * this key, i.e. the newest revision <= atRev of the generation alive at atRev. Calls add with it.
 */
function keepOf(ki: KeyIndex, atRev: number, add: (main: number, sub: number) => void): void {
  const gens = ki.gens;
  if (gens.length === 0 || (gens.length === 1 && gens[0].empty)) return;
  // The first generation that includes atRev or was created after it.
  let gi = 0;
  while (gi < gens.length - 1) {
    const g = gens[gi];
    if (!g.empty && g.main(g.count - 1) > atRev) break;
    gi++;
  }
  const g = gens[gi];
  const n = g.lastAtOrBefore(atRev);
  // etcd adds the revision, then removes it again if it is the tombstone ending a closed generation
  // (which cannot happen after the walk above, but the rule is kept as etcd has it).
  if (n >= 0 && !(n === g.count - 1 && gi !== gens.length - 1)) add(g.main(n), g.sub(n));
}

/** A revision as the first 17 bytes of its key-bucket key, latin1, as kv-store's keep sets hold them. */
function revKey(main: number, sub: number): string {
  const b = Buffer.allocUnsafe(REV_BYTES);
  b.writeBigUInt64BE(BigInt(main), 0);
  b[8] = 0x5f;
  b.writeBigUInt64BE(BigInt(sub), 9);
  return b.toString('latin1');
}

/** Everything hashKV reads from the store, taken at one instant (no await in between). */
interface HashKVPlan {
  rev: number;
  currentRev: number;
  compactRev: number;
  /** keep(rev) restricted to revisions <= compactRev (the only ones the hash asks about). */
  keepBelow: Set<string>;
  /** Whether keep(rev) as a whole is empty: etcd skips nothing then. */
  keepEmpty: boolean;
}

function planHashKV(store: KVStore, rev: number): HashKVPlan {
  const compactRev = store.compactMainRev;
  const currentRev = store.currentRev;
  if (rev > 0 && rev <= compactRev) throw Errors.compacted;
  if (rev > 0 && rev > currentRev) throw Errors.futureRev;
  if (rev === 0) rev = currentRev;
  const keepBelow = new Set<string>();
  let keepEmpty = true;
  store.index.visit('', '', (_k, ki) => {
    keepOf(ki, rev, (main, sub) => {
      keepEmpty = false;
      if (main <= compactRev) keepBelow.add(revKey(main, sub));
    });
  });
  return { rev, currentRev, compactRev, keepBelow, keepEmpty };
}

/**
 * Maintenance.HashKV: the CRC-32C of "key" followed by every key-bucket key and value with main
 * revision <= rev, in key order, leaving out revisions <= the compaction revision that keep(rev) does
 * not name (those a finished compaction has deleted, or is about to). rev 0 = the current revision;
 * rev in (0, compactRev] fails as compacted, rev > currentRev as a future revision; a negative rev
 * hashes nothing but the bucket name, as etcd's does.
 */
export function hashKV(store: KVStore, rev: number): Promise<HashKVResult> {
  return timed(hashRevSeconds, hashKVUntimed(store, rev));
}

async function hashKVUntimed(store: KVStore, rev: number): Promise<HashKVResult> {
  // A compaction applied while the bucket is read may delete revisions this plan counts on: take the
  // plan again (bounded; etcd avoids this with its store lock).
  for (let attempt = 0; ; attempt++) {
    const plan = planHashKV(store, rev);
    const hash = await hashKeyBucket(store.backend, plan);
    if (store.compactMainRev === plan.compactRev || attempt >= 2) {
      return { hash, compactRevision: plan.compactRev, revision: plan.currentRev };
    }
  }
}

async function hashKeyBucket(backend: Backend, plan: HashKVPlan): Promise<number> {
  const h = new Crc32c().write(KEY_BUCKET);
  if (plan.rev < 0) return h.sum32();
  // Keys sort by main revision first: nothing at or past (rev+1, 0) is wanted.
  const end = Buffer.alloc(8);
  end.writeBigUInt64BE(BigInt(plan.rev + 1));
  const lower = plan.compactRev + 1;
  const skip = !plan.keepEmpty;
  await backend.scan('key', Buffer.alloc(0), end, (k, v) => {
    if (k.length < REV_BYTES) return; // not a revision key: etcd's bytesToRev would panic
    if (skip && k.readUInt32BE(0) * 2 ** 32 + k.readUInt32BE(4) < lower) {
      if (!plan.keepBelow.has(k.toString('latin1', 0, REV_BYTES))) return;
    }
    h.write(k);
    h.write(v);
  });
  return h.sum32();
}

// ---------------------------------------------------------------------------------------------
// Hash (the whole backend)

/** Keys etcd leaves out of Hash (mvcc.DefaultIgnores): the consistent index, which differs by member. */
const IGNORED: ReadonlyMap<Bucket, string> = new Map([['meta', 'consistent_index']]);

/**
 * Maintenance.Hash: etcd's backend.Hash over Plinth's buckets. For each bucket in byte order of its
 * name: the name, then each key and value in key order (but meta/consistent_index), all through one
 * CRC-32C, from one consistent state of the backend.
 *
 * The algorithm is etcd's, but the value is not comparable with etcd's: etcd hashes its bbolt buckets,
 * which hold data Plinth keeps elsewhere or not at all (the cluster bucket's version, the members
 * bucket's JSON, auth's revision). It is comparable between Plinth members and across engines.
 */
export function hashBackend(backend: Backend): Promise<number> {
  return timed(hashSeconds, hashBackendUntimed(backend));
}

async function hashBackendUntimed(backend: Backend): Promise<number> {
  // backend.dump visits buckets in BUCKETS order; the hash needs them in name order. CRC each
  // bucket's part alone, then chain the parts in name order with crc32cCombine.
  const parts = new Map<Bucket, Crc32c>();
  for (const b of BUCKETS) parts.set(b, new Crc32c().write(Buffer.from(b)));
  await backend.dump((bucket, key, value) => {
    const ignored = IGNORED.get(bucket);
    if (ignored !== undefined && key.length === ignored.length && key.toString('latin1') === ignored) return;
    // Each member keeps its own record of refused conf changes (pruned at its own snapshot points).
    if (bucket === 'meta' && key.toString('latin1').startsWith(REJECTED_CONF_CHANGE_PREFIX)) return;
    parts.get(bucket)!.write(key).write(value);
  });
  const order = [...BUCKETS].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  let crc = 0;
  for (const b of order) {
    const p = parts.get(b)!;
    crc = crc32cCombine(crc, p.sum32(), p.length);
  }
  return crc;
}
