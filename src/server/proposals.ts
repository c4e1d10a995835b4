import type { InternalRequest } from './internal-request';
import type { ApplyResult } from './applier';

// Proposals waiting for their entry to be applied, by request ID (the sequence part: the prefix is
// this member's own). A proposal whose entry never comes back (dropped by a leader that lost its
// role, a partition) fails after --request-timeout with etcd's timeout error, found by a sweep rather
// than a timer per request (the put path stays free of timers).

export interface Waiter {
  req: InternalRequest;
  start: number;
  resolve: (r: ApplyResult) => void;
  reject: (err: unknown) => void;
}

export class ProposalWaiters {
  /** Insertion order is start order: the sweep stops at the first one not yet due. */
  private readonly waiters = new Map<number, Waiter>();

  get size(): number {
    return this.waiters.size;
  }

  add(seq: number, w: Waiter): void {
    this.waiters.set(seq, w);
  }

  take(seq: number): Waiter | undefined {
    const w = this.waiters.get(seq);
    if (w) this.waiters.delete(seq);
    return w;
  }

  /** Fails every proposal started before now - timeoutMs, with the error errorFor(start) chooses. */
  sweep(now: number, timeoutMs: number, errorFor: (start: number) => Error): number {
    let n = 0;
    for (const [seq, w] of this.waiters) {
      if (now - w.start < timeoutMs) break;
      this.waiters.delete(seq);
      w.reject(errorFor(w.start));
      n++;
    }
    return n;
  }

  failAll(err: Error): void {
    const all = [...this.waiters.values()];
    this.waiters.clear();
    for (const w of all) w.reject(err);
  }
}
