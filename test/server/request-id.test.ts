import { describe, expect, it } from 'vitest';
import { readRequestAuth, readRequestId, RequestIdGenerator } from '../../src/server/request-id';
import { decodeMessage, encodeMessage } from '../../src/wire/root';

describe('request ids', () => {
  it('encodes InternalRaftRequest.header.ID as protobuf does, and reads it back without BigInt', () => {
    for (const member of [0x8e9e05c52164694dn, 1n, 0xffffn, 0xffffffffffffffffn]) {
      const g = new RequestIdGenerator(member, Date.now());
      for (const seq of [0, 1, 127, 128, 2 ** 32 - 1, 2 ** 32, 2 ** 40 * 256 - 1, 2 ** 48 - 1, g.next(), g.next()]) {
        const h = g.header(seq);
        const want = (BigInt(g.prefix) << 48n) | BigInt(seq);
        expect(BigInt(decodeMessage('etcdserverpb.InternalRaftRequest', h).header.ID)).toBe(want);
        const r = readRequestId(Buffer.concat([h, Buffer.from([0x22, 0x02, 0x0a, 0x00])]))!;
        expect(RequestIdGenerator.toBigInt(r)).toBe(want);
        expect(r.prefix).toBe(Number(member & 0xffffn));
      }
    }
  });

  it('makes distinct, increasing ids seeded from the clock, as etcd idutil', () => {
    const g = new RequestIdGenerator(7n, 1_000);
    const a = g.next();
    const b = g.next();
    expect(b).toBe(a + 1);
    expect(a).toBe(1_000 * 256 + 1);
  });

  it('finds no id in an entry without the header', () => {
    expect(readRequestId(Buffer.from([0x22, 0x02, 0x0a, 0x00]))).toBeUndefined();
    expect(readRequestId(Buffer.alloc(0))).toBeUndefined();
  });

  it('carries the user and auth revision as etcd\'s RequestHeader fields 2 and 3, long names included', () => {
    const g = new RequestIdGenerator(0x8e9e05c52164694dn, Date.now());
    const seq = g.next();
    for (const auth of [{ username: 'alice', revision: 7 }, { username: 'ü'.repeat(100), revision: 2 ** 40 + 3 }, { username: 'x'.repeat(5000), revision: 1 }, { username: '', revision: 0 }]) {
      const h = g.header(seq, auth);
      const body = Buffer.from([0x22, 0x02, 0x0a, 0x00]);
      const m = decodeMessage('etcdserverpb.InternalRaftRequest', Buffer.concat([h, body]));
      expect(BigInt(m.header.ID)).toBe(RequestIdGenerator.toBigInt({ prefix: g.prefix, seq }));
      expect(m.header.username ?? '').toBe(auth.username);
      expect(Number(m.header.authRevision ?? 0)).toBe(auth.revision);
      // What protobuf writes for the same header reads back the same way.
      const theirs = encodeMessage('etcdserverpb.InternalRaftRequest', { header: m.header });
      for (const buf of [Buffer.concat([h, body]), Buffer.concat([theirs, body])]) {
        expect(readRequestAuth(buf)).toEqual(auth);
        expect(readRequestId(buf)).toEqual({ prefix: g.prefix, seq });
      }
    }
    expect(readRequestAuth(Buffer.concat([g.header(seq), Buffer.from([0x22, 0x02, 0x0a, 0x00])]))).toEqual({ username: '', revision: 0 });
  });
});
