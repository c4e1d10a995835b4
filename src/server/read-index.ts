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
  /** Rounds in flight at once (reads that arrive while all are out wait for the next). */
  maxRounds?: number;
}

interface Round {
  ctx: Buffer;
  key: string;
  waiters: { resolve: () => void; reject: (err: unknown) => void }[];
  retry: NodeJS.Timeout;
  deadline: number;
}

export class ReadIndexer {
  private next: Round['waiters'] = [];
  private readonly rounds = new Map<string, Round>();
  private seq = 0;
  private closed = false;
  private scheduled = false;
  private readonly maxRounds: number;

  constructor(private readonly deps: ReadIndexDeps, private readonly idPrefix: bigint) {
    this.maxRounds = deps.maxRounds ?? 2;
  }

  /** Resolves when a read started now may be served from this member's applied state. */
  read(): Promise<void> {
    if (this.closed) return Promise.reject(Errors.stopped);
    return new Promise<void>((resolve, reject) => {
      this.next.push({ resolve, reject });
      this.maybeStart();
    });
  }

  get pending(): number {
    let n = this.next.length;
    for (const r of this.rounds.values()) n += r.waiters.length;
    return n;
  }

  /** Starts a round once the current callback is done, so that the reads it made share it. */
  private maybeStart(): void {
    if (this.scheduled || this.rounds.size >= this.maxRounds || !this.next.length || this.closed) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.startRound();
    });
  }

  private startRound(): void {
    if (!this.next.length || this.closed || this.rounds.size >= this.maxRounds) return;
    const ctx = Buffer.allocUnsafe(8);
    ctx.writeBigUInt64BE(BigInt.asUintN(64, this.idPrefix + BigInt(++this.seq)));
    const round: Round = {
      ctx,
      key: ctx.toString('latin1'),
      waiters: this.next,
      deadline: Date.now() + this.deps.timeoutMs,
      retry: setInterval(() => this.retry(round), this.deps.retryMs),
    };
    this.next = [];
    this.rounds.set(round.key, round);
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
    if (this.rounds.get(round.key) !== round) return;
    if (Date.now() >= round.deadline) this.finish(round, Errors.timeout);
    else this.send(round);
  }

  /** Read states from raft: those answering rounds in flight. */
  onReadStates(states: ReadState[]): void {
    for (const rs of states) {
      const round = this.rounds.get(rs.requestCtx.toString('latin1'));
      if (!round) continue;
      clearInterval(round.retry);
      // The round is answered; the next one may start while this one waits for its index to apply.
      this.rounds.delete(round.key);
      this.deps.waitApplied(rs.index).then(
        () => round.waiters.forEach((w) => w.resolve()),
        (err) => round.waiters.forEach((w) => w.reject(err)),
      );
    }
    this.maybeStart();
  }

  /** A leader appeared: send the rounds in flight again now (they went nowhere while there was none). */
  resend(): void {
    for (const r of this.rounds.values()) this.send(r);
  }

  /** The leader changed: the rounds in flight may never be answered; their reads may retry. */
  onLeaderChange(): void {
    for (const r of [...this.rounds.values()]) this.finish(r, Errors.leaderChanged);
  }

  private finish(round: Round, err: unknown): void {
    clearInterval(round.retry);
    if (this.rounds.get(round.key) === round) this.rounds.delete(round.key);
    for (const w of round.waiters) w.reject(err);
    this.maybeStart();
  }

  close(): void {
    this.closed = true;
    for (const r of [...this.rounds.values()]) this.finish(r, Errors.stopped);
    const rest = this.next;
    this.next = [];
    for (const w of rest) w.reject(Errors.stopped);
  }
}
