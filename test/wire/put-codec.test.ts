import { describe, expect, it } from 'vitest';
import { decodeInternalRequest, encodeInternalRequest } from '../../src/server/internal-request';
import { RequestIdGenerator } from '../../src/server/request-id';
import * as c from '../../src/wire/convert';
import { decodePutRequest, encodePutEntry } from '../../src/wire/put-codec';
import { decodeMessage, encodeMessage } from '../../src/wire/root';
import type { PutRequest } from '../../src/mvcc/types';

// The hand-written PutRequest codec against protobufjs over random requests (negative and 64-bit
// leases, empty and large values, every flag).

let seed = 5;
const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => rand(256)));
const leases = [0n, 1n, 127n, 128n, 2n ** 31n, 2n ** 53n + 1n, 2n ** 63n - 1n, -1n, -(2n ** 63n)];

function request(): PutRequest {
  return {
    key: bytes(1 + rand(30)),
    value: bytes(rand(4) ? rand(300) : rand(3) ? 0 : 20_000),
    lease: rand(2) ? leases[rand(leases.length)] : BigInt(rand(2 ** 30)),
    prevKv: rand(2) === 0,
    ignoreValue: rand(3) === 0,
    ignoreLease: rand(3) === 0,
  };
}

describe('PutRequest codec', () => {
  it('decodes what protobufjs encodes', () => {
    for (let i = 0; i < 500; i++) {
      const r = request();
      const wire = encodeMessage('etcdserverpb.PutRequest', c.putRequestToWire(r));
      expect(decodePutRequest(wire), `case ${i}`).toEqual(r);
    }
  });

  it('encodes the WAL entry as protobufjs decodes it', () => {
    for (let i = 0; i < 500; i++) {
      const r = request();
      expect(decodeInternalRequest(encodePutEntry(r)), `case ${i}`).toEqual({ put: r });
      expect(decodeMessage('etcdserverpb.InternalRaftRequest', encodePutEntry(r)).put).toBeDefined();
    }
  });
});

describe('log entries with a request header', () => {
  it('a put entry with its header decodes by hand as protobufjs decodes it; other entries go to protobufjs', () => {
    const ids = new RequestIdGenerator(0x8e9e05c52164694dn, Date.now());
    for (let i = 0; i < 200; i++) {
      const r = request();
      const seq = ids.next();
      const entry = encodeInternalRequest({ put: r }, ids.header(seq));
      expect(decodeInternalRequest(entry)).toEqual({ put: r });
      const pb = decodeMessage('etcdserverpb.InternalRaftRequest', entry);
      expect(BigInt(pb.header.ID)).toBe(RequestIdGenerator.toBigInt({ prefix: ids.prefix, seq }));
      expect(c.putRequest(pb.put)).toEqual(r);
    }
    const del = { deleteRange: { key: Buffer.from('a'), rangeEnd: Buffer.from('b'), prevKv: true } };
    expect(decodeInternalRequest(encodeInternalRequest(del, ids.header(ids.next())))).toEqual(del);
    const compaction = { compaction: { revision: 7, physical: true } };
    expect(decodeInternalRequest(encodeInternalRequest(compaction, ids.header(ids.next())))).toEqual(compaction);
  });
});

describe('PutRequest decoder and unknown fields', () => {
  it('skips fields it does not know, as proto3 decoders do', () => {
    const r = request();
    const known = encodeMessage('etcdserverpb.PutRequest', c.putRequestToWire(r));
    // Field 7 varint, field 20 bytes (two-byte tag), field 9 fixed64, field 10 fixed32, then the known fields.
    const unknown = Buffer.from([0x38, 0x96, 0x01, 0xa2, 0x01, 0x02, 0x61, 0x62, 0x49, 1, 2, 3, 4, 5, 6, 7, 8, 0x55, 1, 2, 3, 4]);
    expect(decodePutRequest(Buffer.concat([unknown, known]))).toEqual(r);
  });
});
