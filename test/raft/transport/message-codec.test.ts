import { describe, expect, it } from 'vitest';
import { MessageType, type Message } from '../../../src/raft/core/types';
import { CodecError } from '../../../src/raft/transport/errors';
import {
  decodeMessage,
  decodeMessages,
  encodedMessageSize,
  encodeMessage,
  encodeMessages,
  ENTRY_HEADER_BYTES,
  MESSAGE_HEADER_BYTES,
} from '../../../src/raft/transport/message-codec';
import { prng, randBytes, randInt, randMessage } from './random-messages';

function base(type: MessageType): Message {
  return { type, to: 2n, from: 1n, term: 7, logTerm: 6, index: 100, entries: [], commit: 99, reject: false, rejectHint: 0 };
}

/** Expects fn to throw a CodecError (and nothing else). */
function expectCodecError(fn: () => unknown): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(CodecError);
}

describe('message codec', () => {
  it('round-trips every message type with the fields that type uses', () => {
    for (let t = 0; t <= MessageType.MsgPreVoteResp; t++) {
      const m = base(t as MessageType);
      if (t === MessageType.MsgApp || t === MessageType.MsgProp) {
        m.entries = [
          { index: 101, term: 7, type: 0, data: Buffer.from('put foo bar') },
          { index: 102, term: 7, type: 1, data: Buffer.from('conf change') },
          { index: 103, term: 7, type: 0, data: Buffer.alloc(0) },
        ];
      }
      if (t === MessageType.MsgAppResp || t === MessageType.MsgVoteResp || t === MessageType.MsgPreVoteResp) {
        m.reject = true;
        m.rejectHint = 42;
      }
      if (t === MessageType.MsgSnap) m.snapshot = { metadata: { index: 500, term: 6, confState: { voters: [1n, 2n, 3n], learners: [0xffff_ffff_ffff_ffffn] } } };
      if (t === MessageType.MsgHeartbeat || t === MessageType.MsgHeartbeatResp || t === MessageType.MsgReadIndex || t === MessageType.MsgReadIndexResp) m.context = Buffer.from('read-ctx-1');
      if (t === MessageType.MsgVote || t === MessageType.MsgPreVote) m.context = Buffer.from('CampaignTransfer');
      const enc = encodeMessage(m);
      expect(enc.length).toBe(encodedMessageSize(m));
      expect(decodeMessage(enc)).toEqual(m);
    }
  });

  it('keeps an absent context apart from an empty one, and an empty conf state', () => {
    const a = { ...base(MessageType.MsgHeartbeat) };
    const b = { ...base(MessageType.MsgHeartbeat), context: Buffer.alloc(0) };
    expect('context' in decodeMessage(encodeMessage(a))).toBe(false);
    expect(decodeMessage(encodeMessage(b)).context).toEqual(Buffer.alloc(0));
    const s: Message = { ...base(MessageType.MsgSnap), snapshot: { metadata: { index: 1, term: 1, confState: { voters: [], learners: [] } } } };
    expect(decodeMessage(encodeMessage(s))).toEqual(s);
  });

  it('round-trips the extremes: 2^53 - 1 numbers, u64 ids', () => {
    const max = Number.MAX_SAFE_INTEGER;
    const m: Message = {
      ...base(MessageType.MsgApp),
      to: (1n << 64n) - 1n,
      from: 0n,
      term: max,
      logTerm: max,
      index: max,
      commit: max,
      rejectHint: max,
      entries: [{ index: max, term: max, type: 0, data: Buffer.from([1]) }],
    };
    expect(decodeMessage(encodeMessage(m))).toEqual(m);
  });

  it('round-trips 500 random messages, singly and in batches', () => {
    const rnd = prng(1);
    const all: Message[] = [];
    for (let i = 0; i < 500; i++) {
      const m = randMessage(rnd);
      all.push(m);
      expect(decodeMessage(encodeMessage(m))).toEqual(m);
    }
    for (let i = 0; i < all.length; i += 97) {
      const batch = all.slice(i, i + randInt(rnd, 60));
      expect(decodeMessages(encodeMessages(batch))).toEqual(batch);
    }
    expect(decodeMessages(encodeMessages([]))).toEqual([]);
  });

  it('gives decoded buffers their own memory (the frame can be reused)', () => {
    const m: Message = { ...base(MessageType.MsgApp), entries: [{ index: 1, term: 1, type: 0, data: Buffer.from('abc') }], context: Buffer.from('ctx') };
    const enc = encodeMessage(m);
    const d = decodeMessage(enc);
    enc.fill(0xee);
    expect(d.entries[0].data.toString()).toBe('abc');
    expect(d.context?.toString()).toBe('ctx');
  });

  it('refuses to encode what it could not decode', () => {
    expectCodecError(() => encodeMessage({ ...base(MessageType.MsgApp), term: 2 ** 53 }));
    expectCodecError(() => encodeMessage({ ...base(MessageType.MsgApp), index: -1 }));
    expectCodecError(() => encodeMessage({ ...base(MessageType.MsgApp), commit: 1.5 }));
    expectCodecError(() => encodeMessage({ ...base(MessageType.MsgApp), to: 1n << 64n }));
    expectCodecError(() => encodeMessage({ ...base(MessageType.MsgApp), from: -1n }));
    expectCodecError(() => encodeMessage({ ...base(19 as MessageType) }));
    expectCodecError(() => encodeMessage({ ...base(MessageType.MsgApp), entries: [{ index: 1, term: 1, type: 2 as 0, data: Buffer.alloc(0) }] }));
    expectCodecError(() => encodeMessage({ ...base(MessageType.MsgApp), entries: [{ index: 1, term: 1, type: 0, data: 'x' as unknown as Buffer }] }));
    expectCodecError(() => encodeMessages([base(MessageType.MsgApp), { ...base(MessageType.MsgApp), term: NaN }]));
  });

  it('refuses every truncation and any trailing byte', () => {
    const rnd = prng(2);
    for (let i = 0; i < 30; i++) {
      const m = randMessage(rnd);
      const enc = encodeMessage(m);
      for (let cut = 0; cut < enc.length; cut++) expectCodecError(() => decodeMessage(enc.subarray(0, cut)));
      expectCodecError(() => decodeMessage(Buffer.concat([enc, Buffer.from([0])])));
      const batch = encodeMessages([m, m]);
      for (let cut = 0; cut < batch.length; cut += 7) expectCodecError(() => decodeMessages(batch.subarray(0, cut)));
    }
  });

  it('refuses out-of-range fields with a clear message', () => {
    const enc = encodeMessage({ ...base(MessageType.MsgApp), entries: [{ index: 1, term: 1, type: 0, data: Buffer.from('x') }] });
    const bad = (mutate: (b: Buffer) => void): string => {
      const b = Buffer.from(enc);
      mutate(b);
      try {
        decodeMessage(b);
      } catch (err) {
        expect(err).toBeInstanceOf(CodecError);
        return (err as Error).message;
      }
      throw new Error('decoded');
    };
    expect(bad((b) => (b[0] = 19))).toBe('unknown message type 19');
    expect(bad((b) => (b[1] = 8))).toBe('unknown message flags 0x8');
    expect(bad((b) => b.writeUInt32BE(0x20_0000, 18))).toBe('term exceeds 2^53 - 1');
    expect(bad((b) => (b[MESSAGE_HEADER_BYTES + 16] = 2))).toBe('unknown entry type 2');
    expect(bad((b) => b.writeUInt32BE(0xffff_ffff, 58))).toMatch(/^entry count 4294967295 exceeds what/);
    expect(bad((b) => b.writeUInt32BE(1000, MESSAGE_HEADER_BYTES + 17))).toMatch(/^truncated message: entry data needs 1000 bytes/);
    const many = Buffer.alloc(4);
    many.writeUInt32BE(0xffff_ffff);
    expect(() => decodeMessages(many)).toThrow(/^batch count 4294967295 exceeds/);
    // A huge conf state count in a tiny buffer is refused without allocating for it.
    const snap = encodeMessage({ ...base(MessageType.MsgSnap), snapshot: { metadata: { index: 1, term: 1, confState: { voters: [1n], learners: [] } } } });
    snap.writeUInt32BE(0x7fff_ffff, MESSAGE_HEADER_BYTES + 16);
    expect(() => decodeMessage(snap)).toThrow(/members exceeds 65536/);
    expect(ENTRY_HEADER_BYTES).toBe(21);
  });

  it('fuzz: random and mutated bytes decode or throw CodecError; whatever decodes re-encodes to the same bytes', () => {
    const rnd = prng(3);
    let decoded = 0;
    const check = (b: Buffer, batch: boolean): void => {
      let out: Message | Message[];
      try {
        out = batch ? decodeMessages(b) : decodeMessage(b);
      } catch (err) {
        if (!(err instanceof CodecError)) throw err;
        return;
      }
      decoded++;
      // The format is canonical: one encoding per message.
      const again = batch ? encodeMessages(out as Message[]) : encodeMessage(out as Message);
      if (!again.equals(b)) expect(again.toString('hex')).toBe(b.toString('hex'));
    };
    for (let i = 0; i < 5000; i++) check(randBytes(rnd, randInt(rnd, 200)), rnd() < 0.5);
    for (let i = 0; i < 20000; i++) {
      const batch = rnd() < 0.3;
      const enc = batch ? encodeMessages([randMessage(rnd), randMessage(rnd)]) : encodeMessage(randMessage(rnd));
      const b = Buffer.from(enc);
      const n = 1 + randInt(rnd, 3);
      for (let k = 0; k < n; k++) {
        const op = randInt(rnd, 3);
        const at = randInt(rnd, b.length);
        if (op === 0) b[at] = randInt(rnd, 256);
        else if (op === 1) b[at] ^= 1 << randInt(rnd, 8);
        else b.writeUInt8(0xff, at);
      }
      check(b, batch);
    }
    // Some mutations land in data bytes and still decode: the re-encode check ran on them.
    expect(decoded).toBeGreaterThan(1000);
  });
});
