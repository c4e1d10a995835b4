import { describe, expect, it } from 'vitest';
import { coalesce, RaftDriver } from '../../src/raft/driver';
import { MemoryStorage } from '../../src/raft/core/memory-storage';
import { RawNode } from '../../src/raft/core/raw-node';
import { EntryType, MessageType, type Entry, type HardState, type Message } from '../../src/raft/core/types';
import type { Wal } from '../../src/raft/wal/wal';

// The driver's message coalescing: the same raft effect with fewer messages.

const e = (index: number, term = 2): Entry => ({ index, term, type: EntryType.NORMAL, data: Buffer.from(`e${index}`) });
const msg = (m: Partial<Message>): Message => ({
  type: MessageType.MsgApp, to: 2n, from: 1n, term: 2, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, ...m,
});
const app = (to: bigint, index: number, logTerm: number, entries: Entry[], commit = 0) => msg({ type: MessageType.MsgApp, to, index, logTerm, entries, commit });

describe('coalesce', () => {
  it('merges consecutive appends to one follower that continue each other, and keeps the highest commit', () => {
    const a = app(2n, 10, 2, [e(11)], 9);
    const b = app(2n, 11, 2, [e(12), e(13)], 10);
    const c = app(3n, 10, 2, [e(11)], 9);
    const d = app(3n, 11, 2, [e(12)], 10);
    const out = coalesce([a, c, b, d]);
    expect(out.map((m) => [m.to, m.index, m.entries.map((x) => x.index), m.commit])).toEqual([
      [2n, 10, [11, 12, 13], 10],
      [3n, 10, [11, 12], 10],
    ]);
    // The inputs are untouched (raft may still hold them).
    expect(a.entries.map((x) => x.index)).toEqual([11]);
    expect(c.entries.map((x) => x.index)).toEqual([11]);
  });

  it('does not merge appends with a gap, another term, or another message to that member between them', () => {
    const gap = coalesce([app(2n, 10, 2, [e(11)]), app(2n, 12, 2, [e(13)])]);
    expect(gap).toHaveLength(2);
    const term = coalesce([app(2n, 10, 2, [e(11)]), msg({ to: 2n, term: 3, index: 11, logTerm: 2, entries: [e(12, 3)] })]);
    expect(term).toHaveLength(2);
    const between = coalesce([app(2n, 10, 2, [e(11)]), msg({ type: MessageType.MsgHeartbeat, to: 2n }), app(2n, 11, 2, [e(12)])]);
    expect(between.map((m) => m.type)).toEqual([MessageType.MsgApp, MessageType.MsgHeartbeat, MessageType.MsgApp]);
    const empty = coalesce([app(2n, 10, 2, []), app(2n, 10, 2, [e(11)])]);
    expect(empty).toHaveLength(2);
  });

  it('sends only the last append response to each member, in its place', () => {
    const r1 = msg({ type: MessageType.MsgAppResp, to: 1n, index: 5 });
    const r2 = msg({ type: MessageType.MsgAppResp, to: 1n, index: 7 });
    const hb = msg({ type: MessageType.MsgHeartbeatResp, to: 1n });
    const other = msg({ type: MessageType.MsgAppResp, to: 3n, index: 6 });
    expect(coalesce([r1, hb, other, r2])).toEqual([hb, other, r2]);
  });

  it('merges a follower\'s forwarded proposals to the leader into one', () => {
    const p = (i: number) => msg({ type: MessageType.MsgProp, to: 1n, from: 2n, term: 0, entries: [e(0 + i, 0)] });
    const out = coalesce([p(1), p(2), msg({ type: MessageType.MsgReadIndex, to: 1n }), p(3), p(4)]);
    expect(out.map((m) => [m.type, m.entries.length])).toEqual([
      [MessageType.MsgProp, 2], [MessageType.MsgReadIndex, 0], [MessageType.MsgProp, 2],
    ]);
  });
});

describe('the driver\'s WAL writes', () => {
  /** A member of one on a WAL that records its appends. */
  function soleMember() {
    const storage = new MemoryStorage();
    storage.applySnapshot({ metadata: { index: 1, term: 1, confState: { voters: [1n], learners: [] } } });
    const node = new RawNode({
      id: 1n, electionTick: 10, heartbeatTick: 1, storage, applied: 1, maxSizePerMsg: 1 << 20, maxCommittedSizePerReady: 1 << 24,
      maxInflightMsgs: 256, maxUncommittedEntriesSize: 0, checkQuorum: true, preVote: false, random: () => 0.5,
    });
    const appends: { entries: number[]; hs: HardState | undefined }[] = [];
    const wal = {
      append: async (entries: Entry[], hs?: HardState) => void appends.push({ entries: entries.map((x) => x.index), hs: hs && { ...hs } }),
      saveSnapshot: async () => {},
      releaseTo: async () => {},
    } as unknown as Wal;
    const applied: number[] = [];
    const driver = new RaftDriver({
      id: 1n, node, storage, wal, transport: undefined, heartbeatMs: 1000, snapshotCount: 1_000_000, catchUpEntries: 10,
      durableBackend: true, confState: { voters: [1n], learners: [] }, advanceTicks: 0,
      hooks: {
        apply: (es) => applied.push(...es.map((x) => x.index)),
        onSoftState: () => {}, onReadStates: () => {}, installSnapshot: async () => {}, dumpSnapshot: async () => ({ file: '', index: 0 }),
        backendDurable: async () => {}, gate: () => undefined, onFatal: (err) => { throw err; }, log: () => {},
      },
    });
    return { driver, appends, applied };
  }

  it('writes a hard state that only moves the commit index with the next append, not on its own; all of it at a clean stop', async () => {
    const { driver, appends, applied } = soleMember();
    await driver.start();
    const until = async (cond: () => boolean) => {
      for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 1));
      expect(cond()).toBe(true);
    };
    await until(() => applied.includes(2)); // the new leader's empty entry
    for (const i of [3, 4, 5]) {
      driver.propose(Buffer.from(`put ${i}`));
      await until(() => applied.includes(i));
    }
    // Every write carries entries (the campaign's term and vote went with the leader's empty entry);
    // none is a commit index alone.
    expect(appends.filter((a) => a.entries.length === 0)).toEqual([]);
    // Entry 4's write carries the commit of entry 3 (written late, not lost).
    const w4 = appends.find((a) => a.entries.includes(4))!;
    expect(w4.hs?.commit).toBe(3);
    await driver.stop();
    expect(appends.at(-1)).toEqual({ entries: [], hs: expect.objectContaining({ commit: 5 }) });
  });
});
