// Seeded random raft Messages for the codec and transport tests (reproducible failures).

import { MessageType, type Entry, type Message } from '../../../src/raft/core/types';

/** mulberry32: a small seeded PRNG, [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randInt(rnd: () => number, maxExclusive: number): number {
  return Math.floor(rnd() * maxExclusive);
}

export function randBytes(rnd: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = randInt(rnd, 256);
  return b;
}

/** A number across the whole safe range, often small (as real terms/indexes are), sometimes at the edges. */
export function randNum(rnd: () => number): number {
  const r = rnd();
  if (r < 0.1) return 0;
  if (r < 0.15) return Number.MAX_SAFE_INTEGER;
  if (r < 0.2) return 2 ** 32 + randInt(rnd, 1000);
  if (r < 0.6) return randInt(rnd, 1000);
  return Math.floor(rnd() * Number.MAX_SAFE_INTEGER);
}

export function randId(rnd: () => number): bigint {
  const r = rnd();
  if (r < 0.1) return 0n;
  if (r < 0.2) return (1n << 64n) - 1n;
  return (BigInt(randInt(rnd, 2 ** 32)) << 32n) | BigInt(randInt(rnd, 2 ** 32));
}

export function randMessage(rnd: () => number, overrides: Partial<Message> = {}): Message {
  const nEntries = rnd() < 0.5 ? 0 : randInt(rnd, 6);
  const entries: Entry[] = [];
  for (let i = 0; i < nEntries; i++) {
    entries.push({ index: randNum(rnd), term: randNum(rnd), type: rnd() < 0.8 ? 0 : 1, data: randBytes(rnd, rnd() < 0.2 ? 0 : randInt(rnd, 400)) });
  }
  const m: Message = {
    type: randInt(rnd, MessageType.MsgPreVoteResp + 1) as MessageType,
    to: randId(rnd),
    from: randId(rnd),
    term: randNum(rnd),
    logTerm: randNum(rnd),
    index: randNum(rnd),
    entries,
    commit: randNum(rnd),
    reject: rnd() < 0.3,
    rejectHint: randNum(rnd),
  };
  if (rnd() < 0.2) {
    const ids = (): bigint[] => Array.from({ length: randInt(rnd, 6) }, () => randId(rnd));
    m.snapshot = { metadata: { index: randNum(rnd), term: randNum(rnd), confState: { voters: ids(), learners: ids() } } };
  }
  if (rnd() < 0.3) m.context = randBytes(rnd, randInt(rnd, 40));
  return { ...m, ...overrides };
}

/** A MsgApp as the leader sends it: `n` entries of `bytes` each after index. */
export function msgApp(from: bigint, to: bigint, index: number, n = 1, bytes = 300): Message {
  const entries: Entry[] = [];
  for (let i = 0; i < n; i++) entries.push({ index: index + 1 + i, term: 5, type: 0, data: Buffer.alloc(bytes, (index + i) & 0xff) });
  return { type: MessageType.MsgApp, to, from, term: 5, logTerm: 5, index, entries, commit: index, reject: false, rejectHint: 0 };
}

export function msgAppResp(from: bigint, to: bigint, index: number): Message {
  return { type: MessageType.MsgAppResp, to, from, term: 5, logTerm: 0, index, entries: [], commit: 0, reject: false, rejectHint: 0 };
}
