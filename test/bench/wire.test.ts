// The driver's hand-made protobuf, checked against protobufjs and etcd's proto/ (src/wire/root).
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage } from '../../src/wire/root';
import {
  encodeLeaseGrant,
  encodeLeaseKeepAlive,
  encodePut,
  encodeRange,
  encodeTxn,
  encodeWatchCreate,
  leaseGrantInfo,
  prefixEnd,
  prefixRange,
  putTemplate,
  putVarintKey,
  rangeInfo,
  readVarint,
  requestOpPut,
  requestOpRange,
  txnPutTemplate,
  varintKey,
  watchEventCount,
  watchInfo,
} from '../../bench/lib/wire';
import { preloadKey } from '../../bench/driver';

const b = (s: string) => Buffer.from(s);

describe('requests decode as etcd defines them', () => {
  it('RangeRequest', () => {
    const m = decodeMessage('etcdserverpb.RangeRequest', encodeRange({ key: b('a'), rangeEnd: b('b'), limit: 500, revision: 2 ** 40, serializable: true }));
    expect(m).toMatchObject({ key: b('a'), rangeEnd: b('b'), limit: '500', revision: String(2 ** 40), serializable: true, keysOnly: false });
  });
  it('PutRequest, with a lease id above 2^53', () => {
    const m = decodeMessage('etcdserverpb.PutRequest', encodePut(b('k'), Buffer.alloc(300, 1), 7587885449362347779n));
    expect(m.key).toEqual(b('k'));
    expect(m.value).toEqual(Buffer.alloc(300, 1));
    expect(m.lease).toBe('7587885449362347779');
  });
  it('TxnRequest of puts and ranges', () => {
    const m = decodeMessage('etcdserverpb.TxnRequest', encodeTxn([requestOpPut(encodePut(b('x'), b('1'))), requestOpRange(encodeRange({ key: b('y'), limit: 3 }))]));
    expect(m.compare).toEqual([]);
    expect(m.success[0].requestPut).toMatchObject({ key: b('x'), value: b('1') });
    expect(m.success[1].requestRange).toMatchObject({ key: b('y'), limit: '3' });
  });
  it('lease and watch requests', () => {
    expect(decodeMessage('etcdserverpb.LeaseGrantRequest', encodeLeaseGrant(100))).toMatchObject({ TTL: '100', ID: '0' });
    expect(decodeMessage('etcdserverpb.LeaseKeepAliveRequest', encodeLeaseKeepAlive(2n ** 62n + 5n)).ID).toBe(String(2n ** 62n + 5n));
    const w = decodeMessage('etcdserverpb.WatchRequest', encodeWatchCreate({ key: b('w'), rangeEnd: b('x'), startRevision: 9 }));
    expect(w.createRequest).toMatchObject({ key: b('w'), rangeEnd: b('x'), startRevision: '9' });
  });
  it('templates write only the key', () => {
    const t = putTemplate(16, Buffer.alloc(256, 9));
    for (const i of [0, 1, 63, 64, 1_000_000]) {
      const m = decodeMessage('etcdserverpb.PutRequest', t.varint(i));
      expect(m.key).toEqual(varintKey(16, i));
      expect(m.value).toEqual(Buffer.alloc(256, 9));
    }
    expect(decodeMessage('etcdserverpb.PutRequest', t.withKey(Buffer.alloc(16, 0x41))).key).toEqual(Buffer.alloc(16, 0x41));
    const tt = txnPutTemplate(8, b('val'));
    expect(decodeMessage('etcdserverpb.TxnRequest', tt.varint(300)).success[0].requestPut.key).toEqual(varintKey(8, 300));
  });
});

describe("Go's binary.PutVarint keys", () => {
  it('zigzag-encode into a zero-padded key', () => {
    expect([...varintKey(4, 0)]).toEqual([0, 0, 0, 0]);
    expect([...varintKey(4, 1)]).toEqual([2, 0, 0, 0]);
    expect([...varintKey(4, 64)]).toEqual([0x80, 0x01, 0, 0]);
    expect([...varintKey(4, -1)]).toEqual([1, 0, 0, 0]);
    expect(readVarint(varintKey(8, 123456), 0)[0]).toBe(246912);
    expect(() => putVarintKey(Buffer.alloc(1), 0, 1, 1000)).toThrow(/too small/);
  });
});

describe('prefix ranges as clientv3 makes them', () => {
  it('increments the last byte below 0xff; an empty prefix means every key', () => {
    expect(prefixEnd(b('/a/'))).toEqual(b('/a0'));
    expect(prefixEnd(Buffer.from([0x61, 0xff]))).toEqual(b('b'));
    expect(prefixEnd(Buffer.from([0xff]))).toEqual(Buffer.from([0]));
    expect(prefixRange(Buffer.alloc(0))).toEqual([Buffer.from([0]), Buffer.from([0])]);
  });
  it('preload keys sort in index order', () => {
    expect(preloadKey('/p/', 42, 1000)).toBe('/p/00000042');
    expect(preloadKey('/p/', 5, 200_000_000)).toBe('/p/000000005');
  });
});

describe('responses are scanned, not decoded', () => {
  it('RangeResponse: revision, kvs, more, count, last key', () => {
    const resp = encodeMessage('etcdserverpb.RangeResponse', {
      header: { clusterId: '1', memberId: '2', revision: '123456789', raftTerm: '3' },
      kvs: [
        { key: b('/p/1'), value: b('x'), createRevision: '5', modRevision: '6', version: '1' },
        { key: b('/p/2'), value: b('y'), createRevision: '7', modRevision: '8', version: '1' },
      ],
      more: true,
      count: '1000',
    });
    const r = rangeInfo(resp);
    expect(r).toMatchObject({ revision: 123456789, kvs: 2, more: true, count: 1000 });
    expect(r.lastKey).toEqual(b('/p/2'));
    expect(rangeInfo(encodeMessage('etcdserverpb.RangeResponse', { header: { revision: '1' } }))).toMatchObject({ kvs: 0, more: false, lastKey: undefined });
  });
  it('WatchResponse: created, canceled, event count', () => {
    const created = encodeMessage('etcdserverpb.WatchResponse', { header: { revision: '1' }, watchId: '7', created: true });
    expect(watchInfo(created)).toMatchObject({ watchId: 7, created: true, canceled: false, events: 0 });
    const ev = encodeMessage('etcdserverpb.WatchResponse', {
      watchId: '7',
      events: [{ type: 0, kv: { key: b('k'), value: b('v') } }, { type: 1, kv: { key: b('k') } }],
    });
    expect(watchEventCount(ev)).toBe(2);
    const canceled = encodeMessage('etcdserverpb.WatchResponse', { watchId: '1', canceled: true, compactRevision: '40', cancelReason: 'compacted' });
    expect(watchInfo(canceled)).toMatchObject({ canceled: true, compactRevision: 40, cancelReason: 'compacted' });
  });
  it('LeaseGrantResponse: id beyond 2^53, ttl, error', () => {
    const r = encodeMessage('etcdserverpb.LeaseGrantResponse', { ID: '7587885449362347779', TTL: '100', error: '' });
    expect(leaseGrantInfo(r)).toEqual({ id: 7587885449362347779n, ttl: 100, error: '' });
  });
});
