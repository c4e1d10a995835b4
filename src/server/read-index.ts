import { Errors } from '../errors';
import type { ReadState } from '../raft/core/types';

// Linearizable reads, as etcd's linearizableReadLoop: reads that arrive while a ReadIndex round is in
// flight wait for the next round, so one heartbeat round serves a whole batch. A round asks the
// leader for its commit index (the leader confirms it still leads with a heartbeat round), then waits
// until this member has applied that far. A round with no answer is sent again every retryMs; it
// fails with "request timed out" after timeoutMs, and with "leader changed" if the leader changes.

export interface ReadIndexDeps {
  /** Asks raft for a read index with this context (the driver's readIndex). */
  request(ctx: Buffer): void;
  /** Resolves once this member has applied at least index. */
  waitApplied(index: number): Promise<void>;
  timeoutMs: number;
  retryMs: number;
}

interface Round {
  ctx: Buffer;
  waiters: { resolve: () => void; reject: (err: unknown) => void }[];
  retry: NodeJS.Timeout;
  deadline: number;
}

export class ReadIndexer {
  private next: Round['waiters'] = [];
  private round: Round | undefined;
  private seq = 0;
  private closed = false;

  constructor(private readonly deps: ReadIndexDeps, private readonly idPrefix: bigint) {}

  /** Resolves when a read started now may be served from this member's applied state. */
  read(): Promise<void> {
    if (this.closed) return Promise.reject(Errors.stopped);
    return new Promise<void>((resolve, reject) => {
      this.next.push({ resolve, reject });
      if (!this.round) this.startRound();
    });
  }

  get pending(): number {
    return this.next.length + (this.round?.waiters.length ?? 0);
  }

  private startRound(): void {
    if (!this.next.length || this.closed) return;
    const ctx = Buffer.allocUnsafe(8);
    ctx.writeBigUInt64BE(BigInt.asUintN(64, this.idPrefix + BigInt(++this.seq)));
    const round: Round = {
      ctx,
      waiters: this.next,
      deadline: Date.now() + this.deps.timeoutMs,
      retry: setInterval(() => this.retry(round), this.deps.retryMs),
    };
    this.next = [];
    this.round = round;
    this.send(round);
  }

  private send(round: Round): void {
    try {
      this.deps.request(round.ctx);
    } catch (err) {
      this.finish(round, err);
    }
  }

  private retry(round: Round): void {
    if (this.round !== round) return;
    if (Date.now() >= round.deadline) this.finish(round, Errors.timeout);
    else this.send(round);
  }

  /** Read states from raft: the one answering the round in flight, if any. */
  onReadStates(states: ReadState[]): void {
    const round = this.round;
    if (!round) return;
    for (const rs of states) {
      if (!rs.requestCtx.equals(round.ctx)) continue;
      clearInterval(round.retry);
      // The round is answered; the next one may start while this one waits for its index to apply.
      this.round = undefined;
      this.deps.waitApplied(rs.index).then(
        () => round.waiters.forEach((w) => w.resolve()),
        (err) => round.waiters.forEach((w) => w.reject(err)),
      );
      this.startRound();
      return;
    }
  }

  /** A leader appeared: send the round in flight again now (it went nowhere while there was none). */
  resend(): void {
    if (this.round) this.send(this.round);
  }

  /** The leader changed: the round in flight may never be answered; its reads may retry. */
  onLeaderChange(): void {
    if (this.round) this.finish(this.round, Errors.leaderChanged);
  }

  private finish(round: Round, err: unknown): void {
    clearInterval(round.retry);
    if (this.round === round) this.round = undefined;
    for (const w of round.waiters) w.reject(err);
    this.startRound();
  }

  close(): void {
    this.closed = true;
    if (this.round) this.finish(this.round, Errors.stopped);
    const rest = this.next;
    this.next = [];
    for (const w of rest) w.reject(Errors.stopped);
  }
}
