import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../../src/raft/transport/errors';
import { encodeFrame, FrameParser, FRAME_HEADER_BYTES } from '../../../src/raft/transport/framing';
import {
  ConnectionKind,
  encodeHello,
  encodeReply,
  HandshakeStatus,
  helloBytesNeeded,
  HELLO_BYTES,
  parseHello,
} from '../../../src/raft/transport/handshake';
import { prng, randBytes, randInt } from './random-messages';

function collect(max: number): { parser: FrameParser; frames: { type: number; payload: string }[] } {
  const frames: { type: number; payload: string }[] = [];
  const parser = new FrameParser(max, (type, payload) => frames.push({ type, payload: payload.toString('hex') }));
  return { parser, frames };
}

describe('frame parser', () => {
  const frames = [encodeFrame(1, Buffer.from('hello')), encodeFrame(2, Buffer.alloc(0)), encodeFrame(3, Buffer.alloc(3000, 7)), encodeFrame(4, Buffer.from([1, 2, 3]))];
  const stream = Buffer.concat(frames);
  const expected = frames.map((f) => ({ type: f[4], payload: f.subarray(FRAME_HEADER_BYTES).toString('hex') }));

  it('finds the same frames however the stream is split', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const { parser, frames: got } = collect(4096);
      parser.push(stream.subarray(0, cut));
      parser.push(stream.subarray(cut));
      expect(got).toEqual(expected);
      expect(parser.bufferedBytes).toBe(0);
    }
    const { parser, frames: got } = collect(4096);
    for (let i = 0; i < stream.length; i++) parser.push(stream.subarray(i, i + 1));
    expect(got).toEqual(expected);
  });

  it('refuses a frame above the limit from its header alone, before buffering it', () => {
    const { parser, frames: got } = collect(1000);
    const header = Buffer.alloc(5);
    header.writeUInt32BE(1001);
    expect(() => parser.push(header)).toThrow(new ProtocolError('frame of 1001 bytes exceeds the limit of 1000'));
    expect(parser.bufferedBytes).toBe(0);
    parser.push(encodeFrame(1, Buffer.from('x'))); // stopped: ignored
    expect(got).toEqual([]);
    // exactly the limit is fine
    const ok = collect(1000);
    ok.parser.push(encodeFrame(9, Buffer.alloc(1000)));
    expect(ok.frames.length).toBe(1);
  });

  it('stops delivering when the consumer stops it mid-chunk', () => {
    let n = 0;
    const parser: FrameParser = new FrameParser(100, () => {
      n++;
      parser.stop();
    });
    parser.push(Buffer.concat([encodeFrame(1, Buffer.from('a')), encodeFrame(1, Buffer.from('b'))]));
    expect(n).toBe(1);
  });

  it('pause() holds the rest of a read until resume()', () => {
    const got: number[] = [];
    const parser: FrameParser = new FrameParser(100, (type) => {
      got.push(type);
      if (type === 2) parser.pause();
    });
    parser.push(Buffer.concat([1, 2, 3, 4].map((t) => encodeFrame(t, Buffer.from([t])))));
    expect(got).toEqual([1, 2]);
    expect(parser.bufferedBytes).toBe(12);
    parser.resume();
    expect(got).toEqual([1, 2, 3, 4]);
    expect(parser.bufferedBytes).toBe(0);
  });

  it('fuzz: random chunks either parse or throw ProtocolError, and never buffer more than one frame', () => {
    const rnd = prng(11);
    const max = 2048;
    for (let round = 0; round < 300; round++) {
      const { parser } = collect(max);
      for (let c = 0; c < 20; c++) {
        const chunk = rnd() < 0.5 ? randBytes(rnd, randInt(rnd, 300)) : Buffer.concat([encodeFrame(randInt(rnd, 256), randBytes(rnd, randInt(rnd, 600))), randBytes(rnd, randInt(rnd, 8))]);
        try {
          parser.push(chunk);
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError);
          break;
        }
        expect(parser.bufferedBytes).toBeLessThanOrEqual(FRAME_HEADER_BYTES + max + chunk.length);
      }
    }
  });
});

describe('handshake', () => {
  it('is exactly 30 bytes: PLNT, version 1, kind, cluster, from, to (big-endian)', () => {
    const h = encodeHello(ConnectionKind.SNAPSHOT, 0xcdf818194e3a8c32n, 1n, 0x8e9e05c52164694dn);
    expect(h.length).toBe(HELLO_BYTES);
    expect(h.toString('hex')).toBe('504c4e54' + '01' + '02' + 'cdf818194e3a8c32' + '0000000000000001' + '8e9e05c52164694d');
    expect(parseHello(h)).toEqual({ version: 1, kind: 2, clusterId: 0xcdf818194e3a8c32n, from: 1n, to: 0x8e9e05c52164694dn });
  });

  it('judges bad magic early, and names bad versions and kinds', () => {
    expect(helloBytesNeeded(Buffer.from('GE'))).toBe(0);
    expect(helloBytesNeeded(Buffer.from('PL'))).toBe(28);
    expect(parseHello(Buffer.from('GET / HTTP/1.1\r\n'))).toBe('bad magic: not a Plinth peer connection');
    const h = encodeHello(ConnectionKind.STREAM, 1n, 1n, 2n);
    h[4] = 2;
    expect(parseHello(h)).toBe('unsupported peer protocol version 2 (this member speaks 1)');
    h[4] = 1;
    h[5] = 4;
    expect(parseHello(h)).toEqual({ version: 1, kind: ConnectionKind.MEMBERS, clusterId: 1n, from: 1n, to: 2n });
    h[5] = 5;
    expect(parseHello(h)).toBe('unknown connection kind 5');
    h[5] = 0;
    expect(parseHello(h)).toBe('unknown connection kind 0');
  });

  it('answers u8 status, u16 length, reason', () => {
    expect(encodeReply(HandshakeStatus.OK).toString('hex')).toBe('000000');
    expect(encodeReply(HandshakeStatus.MEMBER_REMOVED, 'member removed').toString('hex')).toBe('05000e' + Buffer.from('member removed').toString('hex'));
  });
});
