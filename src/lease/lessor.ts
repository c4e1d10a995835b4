import { Errors } from '../errors';
import { registerLeaseMetrics } from '../metrics';
import type { KVStore, LeaseBinding } from '../mvcc/kv-store';
import type { Backend } from '../storage';
import { decodeLeaseRecord, encodeLeaseRecord } from '../storage/etcd-layout';

// Leases, after etcd's lessor: grant/revoke/checkpoint are applied from the log (deterministic state:
// id, TTL, remaining TTL, attached keys); expiry times and renewals are the leader's own clock, kept in
// a min-heap so finding what expired costs O(log n) per lease, not a scan of all leases per tick.

/** etcd's lease.MaxLeaseTTL. */
export const MAX_LEASE_TTL = 9_000_000_000;

export class Lease {
  /** Leader-local expiry (ms since epoch). */
  expiry = Infinity;
  readonly keys = new Set<string>();
  /** Remaining TTL recorded by the last checkpoint, in seconds (0 = none). */
  remainingTtl = 0;

  constructor(readonly id: bigint, readonly ttl: number) {}

  /** Seconds left, truncated as etcd reports them. */
  remainingSeconds(now: number): number {
    return Math.max(0, Math.trunc((this.expiry - now) / 1000));
  }
}

interface HeapItem {
  expiry: number;
  lease: Lease;
}

export interface LessorOptions {
  /** Shortest TTL granted (etcd: 1.5 × election timeout, rounded up: 2 s with its defaults). */
  minTtl?: number;
  now?: () => number;
}

export class Lessor implements LeaseBinding {
  readonly leases = new Map<bigint, Lease>();
  private readonly keyLease = new Map<string, bigint>();
  private readonly heap: HeapItem[] = [];
  private readonly minTtl: number;
  private readonly now: () => number;
  /** etcd's etcd_debugging_lease_* counters (lease/metrics.go); expired is counted by the server. */
  readonly metrics = registerLeaseMetrics();

  private constructor(private readonly backend: Backend, opts: LessorOptions) {
    this.minTtl = opts.minTtl ?? 2;
    this.now = opts.now ?? Date.now;
  }

  /** Loads the leases from the backend; their expiry starts now (etcd's Promote on a new leader). */
  static async open(backend: Backend, opts: LessorOptions = {}): Promise<Lessor> {
    const l = new Lessor(backend, opts);
    await l.reload();
    return l;
  }

  // --- LeaseBinding (mvcc) ---
  exists(id: bigint): boolean {
    return this.leases.has(id);
  }
  leaseOf(key: Buffer): bigint {
    return this.keyLease.get(key.toString('latin1')) ?? 0n;
  }
  attach(id: bigint, key: Buffer): void {
    const lease = this.leases.get(id);
    if (!lease) return;
    const k = key.toString('latin1');
    lease.keys.add(k);
    this.keyLease.set(k, id);
  }
  detach(id: bigint, key: Buffer): void {
    const k = key.toString('latin1');
    this.leases.get(id)?.keys.delete(k);
    if (this.keyLease.get(k) === id) this.keyLease.delete(k);
  }

  // --- applied from the log ---

  grant(id: bigint, ttl: number): Lease {
    if (id === 0n) throw Errors.leaseNotFound;
    if (ttl > MAX_LEASE_TTL) throw Errors.leaseTTLTooLarge;
    if (this.leases.has(id)) throw Errors.leaseExist;
    const lease = new Lease(id, Math.max(ttl, this.minTtl));
    this.leases.set(id, lease);
    this.persist(lease);
    this.refresh(lease);
    this.metrics.granted.v++;
    this.metrics.ttl.observe(lease.ttl);
    return lease;
  }

  /** Deletes the lease and, in one write (one revision), every key attached to it. */
  revoke(id: bigint, store: KVStore): void {
    const lease = this.leases.get(id);
    if (!lease) throw Errors.leaseNotFound;
    const keys = [...lease.keys].sort();
    const txn = store.write();
    for (const k of keys) txn.deleteRange(Buffer.from(k, 'latin1'), undefined);
    txn.end();
    this.metrics.revoked.v++;
    this.leases.delete(id);
    for (const k of keys) if (this.keyLease.get(k) === id) this.keyLease.delete(k);
    this.backend.delete('lease', idKey(id));
  }

  /** A leader's checkpoint of the remaining TTL, so a restart does not give the lease its full TTL back. */
  checkpoint(id: bigint, remainingTtl: number): void {
    const lease = this.leases.get(id);
    if (!lease) return;
    lease.remainingTtl = remainingTtl;
    this.persist(lease);
  }

  // --- leader-local ---

  /**
   * This member became the leader: every lease lives its remaining TTL (or full TTL) from now, plus
   * extendMs, so leases do not expire during the handover (etcd's lessor.Promote).
   */
  promote(extendMs: number): void {
    this.primary = true;
    this.heap.length = 0;
    const now = this.now();
    for (const lease of this.leases.values()) {
      const ttl = lease.remainingTtl > 0 ? lease.remainingTtl : lease.ttl;
      lease.expiry = now + ttl * 1000 + extendMs;
      this.push({ expiry: lease.expiry, lease });
    }
  }

  /** This member is no longer the leader: nothing expires here (etcd's lessor.Demote). */
  demote(): void {
    this.primary = false;
    this.heap.length = 0;
    for (const lease of this.leases.values()) lease.expiry = Infinity;
  }

  /** Whether this member runs expiry (the leader). */
  primary = true;

  /** Keep-alive: the lease lives another full TTL. Returns the TTL. */
  renew(id: bigint): number {
    const lease = this.leases.get(id);
    if (!lease || lease.expiry <= this.now()) throw Errors.leaseNotFound;
    lease.remainingTtl = 0;
    this.refresh(lease);
    this.metrics.renewed.v++;
    return lease.ttl;
  }

  lookup(id: bigint): Lease | undefined {
    return this.leases.get(id);
  }

  remainingSeconds(lease: Lease): number {
    return lease.remainingSeconds(this.now());
  }

  /** Leases whose expiry has passed, oldest first, at most limit of them. */
  expired(limit: number): Lease[] {
    const now = this.now();
    const out: Lease[] = [];
    while (this.heap.length && this.heap[0].expiry <= now && out.length < limit) {
      const item = this.pop();
      // Stale heap entries (renewed or revoked since) are skipped.
      if (this.leases.get(item.lease.id) === item.lease && item.lease.expiry === item.expiry) out.push(item.lease);
    }
    return out;
  }

  /** Puts an expired lease back in the queue, to be looked at again after delayMs. */
  retryLater(lease: Lease, delayMs: number): void {
    lease.expiry = this.now() + delayMs;
    this.push({ expiry: lease.expiry, lease });
  }

  private refresh(lease: Lease): void {
    if (!this.primary) {
      lease.expiry = Infinity;
      return;
    }
    const ttl = lease.remainingTtl > 0 ? lease.remainingTtl : lease.ttl;
    lease.expiry = this.now() + ttl * 1000;
    this.push({ expiry: lease.expiry, lease });
  }

  /** Reads every lease back from the backend (after a snapshot replaced it). */
  async reload(): Promise<void> {
    this.leases.clear();
    this.keyLease.clear();
    this.heap.length = 0;
    await this.backend.scan('lease', Buffer.alloc(0), undefined, (k, v) => {
      const { ttl, remainingTtl } = decodeLeaseRecord(v);
      const lease = new Lease(k.readBigInt64BE(0), ttl);
      lease.remainingTtl = remainingTtl;
      this.leases.set(lease.id, lease);
    });
    for (const lease of this.leases.values()) this.refresh(lease);
  }

  private persist(lease: Lease): void {
    // etcd's record (leasepb.Lease), so the backend is etcd's.
    this.backend.put('lease', idKey(lease.id), encodeLeaseRecord(lease.id, lease.ttl, lease.remainingTtl));
  }

  // A binary min-heap on expiry.
  private push(item: HeapItem): void {
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].expiry <= h[i].expiry) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }

  private pop(): HeapItem {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l].expiry < h[m].expiry) m = l;
        if (r < h.length && h[r].expiry < h[m].expiry) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}

function idKey(id: bigint): Buffer {
  const k = Buffer.alloc(8);
  k.writeBigInt64BE(id);
  return k;
}
