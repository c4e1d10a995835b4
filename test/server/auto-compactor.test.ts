import { describe, expect, it } from 'vitest';
import { Errors } from '../../src/errors';
import { parseArgs, UsageError } from '../../src/cli/flags';
import {
  goDurationString, newAutoCompactor, parseCompactionRetention, PeriodicCompactor, RevisionCompactor,
  type Clock, type CompactTarget,
} from '../../src/server/auto-compactor';

// etcd 3.4's v3compactor tests (periodic_test.go, revision_test.go) on a fake clock: the same
// schedules, the same revisions asked for.

const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
};

class FakeClock implements Clock {
  t = 0;
  private sleepers: { at: number; resolve: () => void }[] = [];
  now(): number {
    return this.t;
  }
  sleep(ms: number) {
    let resolve!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    const s = { at: this.t + ms, resolve };
    this.sleepers.push(s);
    return { done, cancel: () => resolve() };
  }
  /** Moves time on and lets the compactor run until it waits again. */
  async advance(ms: number): Promise<void> {
    this.t += ms;
    const due = this.sleepers.filter((s) => s.at <= this.t);
    this.sleepers = this.sleepers.filter((s) => s.at > this.t);
    for (const s of due) s.resolve();
    await flush();
  }
}

/** etcd's fakeRevGetter (each Rev() call returns one more) and fakeCompactable (records requests). */
class Fake implements CompactTarget {
  revCalls = 0;
  current = 0;
  compacted: number[] = [];
  fail: unknown;
  rev(): number {
    this.revCalls++;
    return ++this.current;
  }
  async compact(rev: number): Promise<void> {
    this.compacted.push(rev);
    if (this.fail) throw this.fail;
  }
}

describe('periodic auto-compaction (etcd periodic.go)', () => {
  it('2h retention: records every 6 minutes, first compacts after 2h at the revision of 2h ago, then hourly', async () => {
    const clock = new FakeClock();
    const rg = new Fake();
    const c = new PeriodicCompactor(2 * 3600_000, rg, clock);
    expect([c.retryIntervalMs, c.compactIntervalMs, c.retentions]).toEqual([360_000, 3600_000, 21]);
    c.run();
    await flush();
    for (let i = 0; i < 19; i++) await clock.advance(c.retryIntervalMs);
    expect(rg.compacted).toEqual([]); // 1h54m
    await clock.advance(c.retryIntervalMs); // 2h
    expect(rg.compacted).toEqual([1]);
    for (let hour = 1; hour <= 3; hour++) {
      for (let i = 0; i < 9; i++) await clock.advance(c.retryIntervalMs);
      expect(rg.compacted.length).toBe(hour);
      await clock.advance(c.retryIntervalMs);
      // The revision recorded 2h before (one per 6 minutes): 10, 20, 30 as in etcd's TestPeriodicHourly.
      expect(rg.compacted[hour]).toBe(hour * 10);
    }
    await c.stop();
  });

  it('5m retention: every 30 s it records, compacts every 5 minutes (TestPeriodicMinutes)', async () => {
    const clock = new FakeClock();
    const rg = new Fake();
    const c = new PeriodicCompactor(5 * 60_000, rg, clock);
    expect([c.retryIntervalMs, c.retentions]).toEqual([30_000, 11]);
    c.run();
    await flush();
    for (let i = 0; i < 10; i++) await clock.advance(c.retryIntervalMs);
    expect(rg.compacted).toEqual([1]);
    for (let i = 0; i < 50; i++) await clock.advance(c.retryIntervalMs);
    expect(rg.compacted).toEqual([1, 10, 20, 30, 40, 50]);
    await c.stop();
  });

  it('pause records but does not compact; after resume it compacts at the revision of a period ago (TestPeriodicPause)', async () => {
    const clock = new FakeClock();
    const rg = new Fake();
    const c = new PeriodicCompactor(3600_000, rg, clock);
    c.run();
    c.pause();
    await flush();
    const n = c.retentions;
    for (let i = 0; i < n * 3; i++) await clock.advance(c.retryIntervalMs);
    expect(rg.compacted).toEqual([]);
    c.resume();
    await clock.advance(c.retryIntervalMs);
    expect(rg.compacted).toEqual([1 + 2 * n + 1]);
    await c.stop();
  });

  it('a failed compaction is retried at the next interval; "compacted" counts as success', async () => {
    const clock = new FakeClock();
    const rg = new Fake();
    const c = new PeriodicCompactor(60_000, rg, clock); // 1m: every 6 s
    rg.fail = new Error('etcdserver: request timed out');
    c.run();
    await flush();
    for (let i = 0; i < 10; i++) await clock.advance(6_000);
    expect(rg.compacted).toEqual([1]);
    await clock.advance(6_000);
    expect(rg.compacted).toEqual([1, 1]); // retried 6 s later, at the oldest revision it holds (11 kept)
    rg.fail = Errors.compacted;
    await clock.advance(6_000);
    expect(rg.compacted).toEqual([1, 1, 2]); // the window moved on; "compacted" is a success (t = 72 s)
    rg.fail = undefined;
    for (let i = 0; i < 9; i++) await clock.advance(6_000);
    expect(rg.compacted.length).toBe(3); // then the next one a whole period after that success
    await clock.advance(6_000);
    expect(rg.compacted).toEqual([1, 1, 2, 12]);
    await c.stop();
  });

  it('sub-second retentions work the same way (1s: every 100ms)', async () => {
    const clock = new FakeClock();
    const rg = new Fake();
    const c = new PeriodicCompactor(1000, rg, clock);
    expect([c.retryIntervalMs, c.retentions]).toEqual([100, 11]);
    c.run();
    await flush();
    for (let i = 0; i < 30; i++) await clock.advance(100);
    expect(rg.compacted).toEqual([1, 10, 20]);
    await c.stop();
  });
});

describe('revision auto-compaction (etcd revision.go)', () => {
  it('every interval compacts at current - retention, skipping <= 0 and the same revision (TestRevision)', async () => {
    const clock = new FakeClock();
    const rg = new Fake();
    const c = new RevisionCompactor(10, rg, clock);
    expect(c.intervalMs).toBe(5 * 60_000); // etcd 3.4's fixed revInterval
    c.run();
    await flush();
    await clock.advance(c.intervalMs);
    expect(rg.revCalls).toBe(1);
    expect(rg.compacted).toEqual([]); // rev 1 - 10 <= 0
    rg.current = 99;
    await clock.advance(c.intervalMs);
    expect(rg.compacted).toEqual([90]);
    rg.current = 99;
    await clock.advance(c.intervalMs);
    expect(rg.compacted).toEqual([90]); // the same revision again: skipped
    rg.current = 199;
    await clock.advance(c.intervalMs);
    expect(rg.compacted).toEqual([90, 190]);
    await c.stop();
  });

  it('a failed compaction is tried again at the next check', async () => {
    const clock = new FakeClock();
    const rg = new Fake();
    const c = new RevisionCompactor(5, rg, clock, () => {}, 1000);
    rg.current = 49;
    rg.fail = new Error('boom');
    c.run();
    await flush();
    await clock.advance(1000);
    rg.current = 49;
    rg.fail = undefined;
    await clock.advance(1000);
    expect(rg.compacted).toEqual([45, 45]);
  });

  it('stop ends the loop while it waits', async () => {
    const clock = new FakeClock();
    const rg = new Fake();
    const c = new RevisionCompactor(1, rg, clock, () => {}, 1000);
    c.run();
    await c.stop();
    rg.current = 100;
    await clock.advance(5000);
    expect(rg.compacted).toEqual([]);
  });
});

describe('--auto-compaction-retention as etcd parses it (embed.parseCompactionRetention)', () => {
  it.each([
    ['periodic', '0', 0],
    ['periodic', '1', 3600_000], // no unit: hours
    ['periodic', '24', 24 * 3600_000],
    ['periodic', '30m', 1800_000],
    ['periodic', '1h30m', 5400_000],
    ['periodic', '1.5s', 1500],
    ['periodic', '500ms', 500],
    ['revision', '1000', 1000],
    ['revision', '0', 0],
    ['revision', '1s', 1e9], // etcd counts a duration's nanoseconds as revisions
  ] as const)('%s %s', (mode, v, want) => {
    expect(parseCompactionRetention(mode, v)).toBe(want);
  });

  it.each(['abc', '5x', '-1', '1h-'])('refuses %s', (v) => {
    expect(() => parseCompactionRetention('periodic', v)).toThrow(/error parsing CompactionRetention/);
  });

  it('flags: mode and retention, in any order; bad values are usage errors', () => {
    const cfg = (argv: string[]) => {
      const c = parseArgs(argv);
      if (c.kind !== 'serve') throw new Error('not serve');
      return c.config;
    };
    expect(cfg([]).autoCompactionMode).toBe('periodic');
    expect(cfg([]).autoCompactionRetention).toBe('0');
    const c = cfg(['--auto-compaction-retention', '100', '--auto-compaction-mode', 'revision', '--auto-compaction-revision-interval', '200ms']);
    expect([c.autoCompactionMode, c.autoCompactionRetention, c.autoCompactionRevisionIntervalMs]).toEqual(['revision', '100', 200]);
    expect(parseArgs([], { ETCD_AUTO_COMPACTION_RETENTION: '1h' }).kind).toBe('serve');
    expect(() => parseArgs(['--auto-compaction-mode', 'hourly'])).toThrow(UsageError);
    expect(() => parseArgs(['--auto-compaction-mode', 'hourly'])).toThrow('unknown auto-compaction-mode "hourly"');
    expect(() => parseArgs(['--auto-compaction-retention', '1x'])).toThrow(UsageError);
  });

  it('off at 0; a compactor of the mode otherwise', () => {
    const t = new Fake();
    expect(newAutoCompactor(t, { mode: 'periodic', retention: 0 })).toBeUndefined();
    expect(newAutoCompactor(t, { mode: 'periodic', retention: 1000 })).toBeInstanceOf(PeriodicCompactor);
    expect(newAutoCompactor(t, { mode: 'revision', retention: 5, revisionIntervalMs: 7 })).toMatchObject({ intervalMs: 7, retention: 5 });
  });

  it('durations print as Go prints them', () => {
    expect([goDurationString(3600_000), goDurationString(360_000), goDurationString(1500), goDurationString(100)]).toEqual(['1h0m0s', '6m0s', '1.5s', '100ms']);
  });
});
