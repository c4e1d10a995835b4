import { describe, expect, it } from 'vitest';
import { coalesce } from '../../src/raft/driver';
import { EntryType, MessageType, type Entry, type Message } from '../../src/raft/core/types';

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
