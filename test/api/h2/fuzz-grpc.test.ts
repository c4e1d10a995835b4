import * as zlib from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GrpcCode } from '../../../src/errors';
import {
  F, NO_PING_POLICY, PATHS, PREFACE, T, chunk, cutsArb, fcParams, frame, goAway, grpcMessage, grpcStatuses, harness, hex,
  parseFrames, requestBlock, responseMessages, settingsPayload, u32, type Frame, type Harness,
} from './fuzz-helpers';

// Property-based fuzzing of the gRPC message reader (H2Stream's reassembly of length-prefixed messages)
// and of ServerCall's handling of compressed flags and encodings (issue #16), through a GrpcServer with a
// test service on an in-process H2Connection (fake socket).
// Longer runs: FC_RUNS=100000 npx vitest run test/api/h2/fuzz-grpc.test.ts (FC_SEED / FC_PATH replay a failure).

/** The client's preface with windows opened wide, so that echoed answers are never held back by flow control. */
const START = Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0, settingsPayload([[4, 1 << 30]])), frame(T.WINDOW_UPDATE, 0, 0, u32(1 << 30))]);

/** body split at the cuts (and at 16384) into DATA frames of stream id, some padded, some empty frames between; END_STREAM on the last when end. */
function dataFrames(id: number, body: Buffer, cuts: number[], pads: (number | null)[], empties: number[], end: boolean): Buffer[] {
  const pieces: Buffer[] = [];
  for (const p of body.length ? chunk(body, cuts) : [body]) for (let o = 0; o < p.length || (o === 0 && p.length === 0); o += 16000) pieces.push(p.subarray(o, o + 16000));
  const out: Buffer[] = [];
  pieces.forEach((p, i) => {
    if (empties.includes(i)) out.push(frame(T.DATA, 0, id, Buffer.alloc(0)));
    const pad = pads.length ? pads[i % pads.length] : null;
    const last = end && i === pieces.length - 1 ? F.END_STREAM : 0;
    if (pad === null) out.push(frame(T.DATA, last, id, p));
    else out.push(frame(T.DATA, last | F.PADDED, id, Buffer.concat([Buffer.from([pad]), p, Buffer.alloc(pad)])));
  });
  return out;
}

const open = (id: number, path: string, extra: [string, string][] = []) => frame(T.HEADERS, F.END_HEADERS, id, requestBlock(path, extra));

/** Feeds input in chunks; waits for compressed messages' inflation (zlib's threadpool) when `compressed`, until each stream in `answered` has its trailers or RST_STREAM. */
async function run(input: Buffer, cuts: number[], maxMessage?: number, compressed = false, answered: number[] = []): Promise<{ h: Harness; frames: Frame[] }> {
  const h = harness(maxMessage, NO_PING_POLICY);
  for (const c of chunk(input, cuts)) h.feed([c]);
  if (compressed) {
    await h.settleQuiet(() => {
      const fs = parseFrames(h.socket.output()).frames;
      return answered.every((id) => fs.some((f) => f.id === id && ((f.type === T.HEADERS && f.flags & F.END_STREAM) || f.type === T.RST_STREAM)));
    });
  }
  await h.settle();
  expect(h.socket.asyncErrors).toEqual([]);
  const { frames, rest } = parseFrames(h.socket.output());
  expect(rest).toBe(0);
  return { h, frames };
}

const msgArb = fc.oneof(
  { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 4 },
  { arbitrary: fc.uint8Array({ minLength: 1000, maxLength: 20_000 }), weight: 1 },
  { arbitrary: fc.constant(new Uint8Array(0)), weight: 1 },
);
const padsArb = fc.array(fc.option(fc.integer({ min: 0, max: 255 }), { nil: null, freq: 2 }), { maxLength: 4 });

const frameCode = (frames: Frame[]) => goAway(frames)?.code;

describe('gRPC message reader (fuzz)', () => {
  it('messages split at any byte across DATA frames (padded, empty frames between, any socket chunking, streams interleaved) arrive whole and in order', async () => {
    const streamArb = fc.record({ msgs: fc.array(msgArb, { maxLength: 6 }), cuts: fc.array(fc.nat(), { maxLength: 12 }), pads: padsArb, empties: fc.array(fc.nat({ max: 12 }), { maxLength: 2 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(streamArb, { minLength: 1, maxLength: 3 }), fc.array(fc.nat(), { maxLength: 40 }), cutsArb, async (streams, order, cuts) => {
        // Each stream's frames, interleaved across streams in an order picked by `order`.
        const queues = streams.map((s, i) => {
          const id = 1 + 2 * i;
          const body = Buffer.concat(s.msgs.map((m) => grpcMessage(Buffer.from(m))));
          return [open(id, PATHS.bidi), ...dataFrames(id, body, s.cuts, s.pads, s.empties, true)];
        });
        const out: Buffer[] = [START];
        // HEADERS first in stream order (new stream ids must increase), then DATA in any interleaving.
        for (const q of queues) out.push(q.shift()!);
        let k = 0;
        while (queues.some((q) => q.length)) {
          const live = queues.filter((q) => q.length);
          out.push(live[(order[k++ % Math.max(1, order.length)] ?? 0) % live.length].shift()!);
        }
        const input = Buffer.concat(out);
        const { h, frames } = await run(input, cuts);
        expect(frameCode(frames)).toBeUndefined();
        const st = grpcStatuses(frames);
        streams.forEach((s, i) => {
          const id = 1 + 2 * i;
          const want = s.msgs.map((m) => hex(Buffer.from(m)));
          expect((h.received.get(id) ?? []).map(hex), `stream ${id} received`).toEqual(want);
          expect(responseMessages(frames, id).map(hex), `stream ${id} echoed`).toEqual(want);
          expect(st.get(id)?.code).toBe(GrpcCode.OK);
        });
      }),
      fcParams(300, 0.3),
    );
  });

  it('a message announced longer than the limit is refused with RESOURCE_EXHAUSTED, after the messages before it; nothing after it is delivered', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4096 }),
        fc.array(fc.nat({ max: 4096 }), { maxLength: 4 }),
        fc.oneof(fc.integer({ min: 1, max: 100_000 }), fc.integer({ min: 1, max: 0xffffffff })),
        fc.nat({ max: 3000 }),
        fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 3 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.boolean(),
        cutsArb,
        async (limit, sizes, over, bodyLen, after, dcuts, end, cuts) => {
          const ok = sizes.map((n, i) => Buffer.alloc(Math.min(n, limit), i + 1));
          const announced = Math.min(0xffffffff, limit + over);
          const big = Buffer.alloc(5 + bodyLen, 0xee);
          big[0] = 0;
          big.writeUInt32BE(announced, 1);
          const body = Buffer.concat([...ok.map((m) => grpcMessage(m)), big, ...after.map((m) => grpcMessage(Buffer.from(m)))]);
          const input = Buffer.concat([START, open(1, PATHS.bidi), ...dataFrames(1, body, dcuts, [], [], end)]);
          const { h, frames } = await run(input, cuts, limit);
          expect(frameCode(frames)).toBeUndefined();
          expect((h.received.get(1) ?? []).map(hex)).toEqual(ok.map(hex));
          const st = grpcStatuses(frames).get(1);
          expect(st?.code).toBe(GrpcCode.RESOURCE_EXHAUSTED);
          expect(st?.message).toContain(`${announced} vs. ${limit}`);
        },
      ),
      fcParams(300, 0.3),
    );
  });

  it('unary: the announced length over the limit is refused with RESOURCE_EXHAUSTED even before the body comes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 2048 }), fc.integer({ min: 1, max: 0xffffffff }), fc.nat({ max: 5 }), cutsArb, async (limit, over, headLen, cuts) => {
        const announced = Math.min(0xffffffff, limit + over);
        const head = Buffer.alloc(5);
        head.writeUInt32BE(announced, 1);
        const input = Buffer.concat([START, open(1, PATHS.unary), frame(T.DATA, 0, 1, Buffer.concat([head, Buffer.alloc(headLen)]))]);
        const { frames } = await run(input, cuts, Math.max(1, limit));
        if (announced > Math.max(1, limit)) expect(grpcStatuses(frames).get(1)?.code).toBe(GrpcCode.RESOURCE_EXHAUSTED);
        else expect(grpcStatuses(frames).get(1)).toBeUndefined(); // still waiting for the body
      }),
      fcParams(200, 0.2),
    );
  });

  it('compressed flag and grpc-encoding: answered as grpc-go (echo, INTERNAL, UNIMPLEMENTED, RESOURCE_EXHAUSTED), never a crash', async () => {
    const encArb = fc.constantFrom('', 'identity', 'gzip', 'deflate', 'snappy', 'zstd', 'GZIP');
    const payloadArb = fc.record({
      raw: fc.uint8Array({ maxLength: 400 }),
      kind: fc.constantFrom('gzip', 'deflate', 'raw', 'corrupt-gzip', 'truncated-gzip', 'bomb'),
      at: fc.nat(),
    });
    await fc.assert(
      fc.asyncProperty(encArb, fc.constantFrom(0, 1), payloadArb, fc.array(fc.nat(), { maxLength: 6 }), cutsArb, async (enc, flag, p, dcuts, cuts) => {
        const limit = 4096;
        const raw = Buffer.from(p.raw);
        let wire: Buffer;
        let inflated: Buffer | undefined; // what the payload decompresses to with `enc`, when it does
        switch (p.kind) {
          case 'gzip':
            wire = zlib.gzipSync(raw);
            break;
          case 'deflate':
            wire = zlib.deflateSync(raw);
            break;
          case 'bomb':
            wire = zlib.gzipSync(Buffer.alloc(limit * 4 + (p.at % 1000)));
            break;
          case 'corrupt-gzip':
            wire = zlib.gzipSync(raw);
            wire[10 + (p.at % (wire.length - 10))] ^= 0x55;
            break;
          case 'truncated-gzip':
            wire = zlib.gzipSync(raw);
            wire = wire.subarray(0, p.at % wire.length);
            break;
          default:
            wire = raw;
        }
        if (enc === 'gzip' || enc === 'deflate') {
          try {
            inflated = enc === 'gzip' ? zlib.gunzipSync(wire) : zlib.inflateSync(wire);
          } catch {
            inflated = undefined;
          }
        }
        const body = grpcMessage(wire, flag);
        const input = Buffer.concat([START, open(1, PATHS.unary, enc ? [['grpc-encoding', enc]] : []), ...dataFrames(1, body, dcuts, [], [], true)]);
        const { h, frames } = await run(input, cuts, limit, flag !== 0, [1]);
        expect(frameCode(frames)).toBeUndefined();
        const st = grpcStatuses(frames).get(1);
        let want: number;
        if (wire.length > limit) want = GrpcCode.RESOURCE_EXHAUSTED;
        else if (flag === 0) want = GrpcCode.OK;
        else if (enc === '' || enc === 'identity') want = GrpcCode.INTERNAL;
        else if (enc !== 'gzip' && enc !== 'deflate') want = GrpcCode.UNIMPLEMENTED;
        // grpc-go's gzip DecompressedSize: the size the trailer (ISIZE) announces, refused before inflating.
        else if (enc === 'gzip' && wire.length >= 4 && wire.readUInt32LE(wire.length - 4) > limit) want = GrpcCode.RESOURCE_EXHAUSTED;
        else if (inflated === undefined) want = GrpcCode.INTERNAL;
        else if (inflated.length > limit) want = GrpcCode.RESOURCE_EXHAUSTED;
        else want = GrpcCode.OK;
        expect(st?.code, `status for encoding ${enc}, flag ${flag}, ${p.kind}: ${st?.message}`).toBe(want);
        if (want === GrpcCode.OK) {
          const got = flag === 0 ? wire : inflated!;
          expect((h.received.get(1) ?? []).map(hex)).toEqual([hex(got)]);
          expect(responseMessages(frames, 1).map(hex)).toEqual([hex(got)]);
        } else {
          expect(h.received.get(1)).toBeUndefined();
        }
      }),
      fcParams(400, 0.4),
    );
  });

  // gRPC's wire format: the Compressed-Flag is 0 or 1; grpc-go's checkRecvPayload answers any other value
  // with INTERNAL "grpc: received unexpected payload format N", whatever the encoding.
  it('a compressed flag other than 0 or 1 is answered with INTERNAL', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 255 }), fc.constantFrom('', 'identity', 'gzip', 'deflate', 'snappy'), fc.uint8Array({ maxLength: 64 }), cutsArb, async (flag, enc, raw, cuts) => {
        const wire = enc === 'gzip' ? zlib.gzipSync(Buffer.from(raw)) : enc === 'deflate' ? zlib.deflateSync(Buffer.from(raw)) : Buffer.from(raw);
        const input = Buffer.concat([START, open(1, PATHS.unary, enc ? [['grpc-encoding', enc]] : []), frame(T.DATA, F.END_STREAM, 1, grpcMessage(wire, flag))]);
        const { h, frames } = await run(input, cuts, undefined, true, [1]);
        expect(grpcStatuses(frames).get(1)?.code, `flag ${flag} with encoding '${enc}'`).toBe(GrpcCode.INTERNAL);
        expect(h.received.get(1)).toBeUndefined();
      }),
      fcParams(100, 0.1),
    );
  });

  /** Random bytes, or messages with random flags whose payloads are gzip, deflate or raw bytes, maybe cut short. */
  const garbageArb: fc.Arbitrary<Buffer> = fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    fc
      .tuple(fc.array(fc.tuple(fc.constantFrom(0, 1, 1, 2, 0x80), fc.uint8Array({ maxLength: 60 }), fc.constantFrom('gzip', 'deflate', 'raw')), { maxLength: 4 }), fc.nat())
      .map(([msgs, cut]) => {
        const b = Buffer.concat(msgs.map(([flag, raw, kind]) => grpcMessage(kind === 'gzip' ? zlib.gzipSync(raw) : kind === 'deflate' ? zlib.deflateSync(raw) : Buffer.from(raw), flag)));
        return cut % 3 === 0 && b.length ? b.subarray(0, cut % b.length) : b;
      }),
  );

  it('garbage on a bidi stream (random flags, prefixes and encodings): every stream ends with one gRPC status or stays open, the connection survives', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ enc: fc.constantFrom('', 'identity', 'gzip', 'deflate', 'x'), body: garbageArb, end: fc.boolean(), cuts: fc.array(fc.nat(), { maxLength: 4 }) }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 512 }),
        cutsArb,
        async (streams, limit, cuts) => {
          const parts: Buffer[] = [START];
          streams.forEach((s, i) => parts.push(open(1 + 2 * i, PATHS.bidi, s.enc ? [['grpc-encoding', s.enc]] : []), ...dataFrames(1 + 2 * i, s.body, s.cuts, [], [], s.end)));
          parts.push(frame(T.PING, 0, 0, Buffer.alloc(8, 9)));
          const ended = streams.flatMap((s, i) => (s.end ? [1 + 2 * i] : []));
          const { h, frames } = await run(Buffer.concat(parts), cuts, limit, true, ended);
          expect(frameCode(frames)).toBeUndefined();
          expect(frames.some((f) => f.type === T.PING && f.flags & F.ACK), 'the connection still answers').toBe(true);
          streams.forEach((s, i) => {
            const id = 1 + 2 * i;
            const trailers = frames.filter((f) => f.type === T.HEADERS && f.id === id && f.flags & F.END_STREAM);
            expect(trailers.length).toBeLessThanOrEqual(1);
            // Nothing after the trailers on that stream but an RST_STREAM NO_ERROR/CANCEL.
            const idx = frames.findIndex((f) => f === trailers[0]);
            if (idx >= 0) for (const f of frames.slice(idx + 1).filter((f) => f.id === id)) expect([T.RST_STREAM]).toContain(f.type);
            if (s.end) expect(trailers.length, `stream ${id} ended by the client is answered`).toBe(1);
            // Echoes are exactly the messages the handler got.
            expect(responseMessages(frames, id).map(hex)).toEqual((h.received.get(id) ?? []).map(hex));
          });
        },
      ),
      fcParams(300, 0.3),
    );
  });

  it('unary: no message then END_STREAM, or two messages, is INTERNAL; exactly one is served', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 50 }), { maxLength: 4 }), fc.array(fc.nat(), { maxLength: 4 }), cutsArb, async (msgs, dcuts, cuts) => {
        const body = Buffer.concat(msgs.map((m) => grpcMessage(Buffer.from(m))));
        const input = Buffer.concat([START, open(1, PATHS.unary), ...dataFrames(1, body, dcuts, [], [], true)]);
        const { frames } = await run(input, cuts);
        expect(grpcStatuses(frames).get(1)?.code).toBe(msgs.length === 1 ? GrpcCode.OK : GrpcCode.INTERNAL);
        expect(frameCode(frames)).toBeUndefined();
      }),
      fcParams(200, 0.2),
    );
  });
});

