import { Errors } from '../errors';

// Auto-compaction, as etcd 3.4's v3compactor (etcdserver/api/v3compactor/{periodic,revision}.go):
// a loop that proposes Compact requests (physical=false) through the server, like a client's Compact
// RPC, so the compaction is in the log. Time comes from an injectable clock, so tests can run the
// hourly schedule in milliseconds.

export type AutoCompactionMode = 'periodic' | 'revision';

/** Time as the compactor sees it (etcd's clockwork.Clock). */
export interface Clock {
  now(): number;
  /** Resolves after ms (of this clock's time); cancel() resolves it at once. */
  sleep(ms: number): { done: Promise<void>; cancel(): void };
}

export const realClock: Clock = {
  now: () => Date.now(),
  sleep(ms) {
    let cancel!: () => void;
    const done = new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      t.unref();
      cancel = () => {
        clearTimeout(t);
        resolve();
      };
    });
    return { done, cancel };
  },
};

/** What the compactor needs of the server (etcd's RevGetter and Compactable). */
export interface CompactTarget {
  /** The current revision. */
  rev(): number;
  /** Proposes a compaction at rev; rejects with etcd's errors. */
  compact(rev: number): Promise<unknown>;
}

export type CompactorLog = (msg: string, fields: Record<string, unknown>) => void;

export class UsageProblem extends Error {}

/**
 * etcd's parseCompactionRetention (embed/etcd.go): a non-negative integer is hours in periodic mode
 * ("1" = 1h) and a revision count in revision mode; anything else is a Go duration ("30m", "1h30m").
 * Returns milliseconds for periodic mode, revisions for revision mode (where, as in etcd, a duration
 * counts its nanoseconds). 0 = off.
 */
export function parseCompactionRetention(mode: AutoCompactionMode, retention: string): number {
  if (/^[+-]?\d+$/.test(retention) && Number(retention) >= 0) {
    const n = Number(retention);
    return mode === 'revision' ? n : n * 3_600_000;
  }
  const ns = parseGoDurationNs(retention);
  if (ns === undefined) throw new UsageProblem(`error parsing CompactionRetention: time: invalid duration "${retention}"`);
  if (ns < 0) throw new UsageProblem(`error parsing CompactionRetention: negative retention "${retention}"`);
  return mode === 'revision' ? ns : ns / 1e6;
}

/** Go's time.ParseDuration, in nanoseconds; undefined if it does not parse. */
function parseGoDurationNs(s: string): number | undefined {
  const m = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(s);
  if (!m) return s === '0' ? 0 : undefined;
  const units: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  for (const p of s.slice(m[1].length).matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) total += Number(p[1]) * units[p[2]];
  return Math.round(m[1] === '-' ? -total : total);
}

/** Shows a duration given in ms as Go prints it ("1h0m0s", "6m0s", "500ms"). */
export function goDurationString(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${+ms.toFixed(6)}ms`;
  let s = ms / 1000;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s = +(s - m * 60).toFixed(9);
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

const isCompacted = (err: unknown) => err === Errors.compacted || (err as Error)?.message === Errors.compacted.message;

abstract class Compactor {
  protected stopped = false;
  protected paused = false;
  private waiting: { cancel(): void } | undefined;
  private loop: Promise<void> | undefined;

  constructor(protected readonly target: CompactTarget, protected readonly clock: Clock, protected readonly log: CompactorLog) {}

  run(): void {
    this.loop ??= this.body().catch((err) => this.log('auto compaction stopped on an error', { error: String(err) }));
  }

  /** Waits ms of the clock; false if stopped meanwhile. */
  protected async wait(ms: number): Promise<boolean> {
    if (this.stopped) return false;
    const s = this.clock.sleep(ms);
    this.waiting = s;
    await s.done;
    this.waiting = undefined;
    return !this.stopped;
  }

  protected abstract body(): Promise<void>;

  /** Suspends compactions (etcd pauses its compactor on a member that is not the leader). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.waiting?.cancel();
    await this.loop;
  }
}

/**
 * etcd's Periodic: every retention/10 (at most 6 minutes) it records the current revision, keeping
 * the last retention/interval+1; once `retention` has passed since the last success (then every
 * min(retention, 1h)), it compacts at the oldest revision recorded, i.e. the one of about `retention`
 * ago. A failure is retried at the next interval.
 */
export class PeriodicCompactor extends Compactor {
  private readonly periodNs: number;
  revs: number[] = [];

  constructor(readonly periodMs: number, target: CompactTarget, clock: Clock = realClock, log: CompactorLog = () => {}) {
    super(target, clock, log);
    this.periodNs = Math.round(periodMs * 1e6);
  }

  /** min(retention, 1h): how often it compacts once the first retention has passed. */
  get compactIntervalMs(): number {
    return Math.min(this.periodNs, 3600e9) / 1e6;
  }

  /** min(retention, 1h) / 10, in Go's integer nanoseconds: how often it records and retries. */
  get retryIntervalMs(): number {
    return Math.floor(Math.min(this.periodNs, 3600e9) / 10) / 1e6;
  }

  /** How many recorded revisions it keeps: retention / interval + 1. */
  get retentions(): number {
    return Math.floor(this.periodNs / Math.floor(Math.min(this.periodNs, 3600e9) / 10)) + 1;
  }

  protected async body(): Promise<void> {
    const compactInterval = this.compactIntervalMs;
    const retryInterval = this.retryIntervalMs;
    const retentions = this.retentions;
    let lastSuccess = this.clock.now();
    let baseInterval = this.periodMs;
    for (;;) {
      this.revs.push(this.target.rev());
      if (this.revs.length > retentions) this.revs = this.revs.slice(1); // revs[0] is the rev of a period ago
      if (!(await this.wait(retryInterval))) return;
      if (this.paused) continue;
      if (this.clock.now() - lastSuccess < baseInterval) continue;
      // Wait up to the given period the first time, then compact every compactInterval.
      if (baseInterval === this.periodMs) baseInterval = compactInterval;
      const rev = this.revs[0];
      const period = goDurationString(this.periodMs);
      this.log('starting auto periodic compaction', { revision: rev, 'compact-period': period });
      try {
        await this.target.compact(rev);
        this.done(rev, period, lastSuccess);
        lastSuccess = this.clock.now();
      } catch (err) {
        if (isCompacted(err)) {
          this.done(rev, period, lastSuccess);
          lastSuccess = this.clock.now();
        } else {
          this.log('failed auto periodic compaction', {
            revision: rev, 'compact-period': period, 'retry-interval': goDurationString(retryInterval), error: (err as Error).message,
          });
        }
      }
    }
  }

  private done(rev: number, period: string, lastSuccess: number): void {
    this.log('completed auto periodic compaction', { revision: rev, 'compact-period': period, took: goDurationString(this.clock.now() - lastSuccess) });
  }
}

/** etcd 3.4's revision mode checks every 5 minutes. */
export const REVISION_CHECK_INTERVAL_MS = 5 * 60 * 1000;

/**
 * etcd's Revision: every check interval (5 minutes in etcd 3.4), compacts at current revision minus
 * retention, unless that is <= 0 or the revision it compacted last time.
 */
export class RevisionCompactor extends Compactor {
  constructor(
    readonly retention: number,
    target: CompactTarget,
    clock: Clock = realClock,
    log: CompactorLog = () => {},
    readonly intervalMs = REVISION_CHECK_INTERVAL_MS,
  ) {
    super(target, clock, log);
  }

  protected async body(): Promise<void> {
    let prev = 0;
    for (;;) {
      if (!(await this.wait(this.intervalMs))) return;
      if (this.paused) continue;
      const rev = this.target.rev() - this.retention;
      if (rev <= 0 || rev === prev) continue;
      const start = Date.now();
      this.log('starting auto revision compaction', { revision: rev, 'revision-compaction-retention': this.retention });
      try {
        await this.target.compact(rev);
        prev = rev;
      } catch (err) {
        if (!isCompacted(err)) {
          this.log('failed auto revision compaction', {
            revision: rev, 'revision-compaction-retention': this.retention, 'retry-interval': goDurationString(this.intervalMs), error: (err as Error).message,
          });
          continue;
        }
        prev = rev;
      }
      this.log('completed auto revision compaction', { revision: rev, 'revision-compaction-retention': this.retention, took: goDurationString(Date.now() - start) });
    }
  }
}

export interface AutoCompactionOptions {
  mode: AutoCompactionMode;
  /** As parseCompactionRetention returns it: ms (periodic) or revisions (revision); 0 = off. */
  retention: number;
  revisionIntervalMs?: number;
  clock?: Clock;
  log?: CompactorLog;
}

/** etcd's v3compactor.New; undefined when the retention is 0 (auto-compaction off). */
export function newAutoCompactor(target: CompactTarget, o: AutoCompactionOptions): PeriodicCompactor | RevisionCompactor | undefined {
  if (o.retention === 0) return undefined;
  const clock = o.clock ?? realClock;
  const log = o.log ?? (() => {});
  return o.mode === 'periodic'
    ? new PeriodicCompactor(o.retention, target, clock, log)
    : new RevisionCompactor(o.retention, target, clock, log, o.revisionIntervalMs ?? REVISION_CHECK_INTERVAL_MS);
}
