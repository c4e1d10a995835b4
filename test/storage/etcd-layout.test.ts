import { describe, expect, it } from 'vitest';
import { alarmKeyToEtcd, decodeAlarmKey, decodeLeaseRecord, encodeAlarmKey, encodeLeaseRecord, entryToEtcd, leaseToEtcd, legacyAlarmKey } from '../../src/storage/etcd-layout';

// etcd's encodings, byte for byte as gogo-protobuf marshals them (zero fields left out, int64 as varint).
describe("etcd's lease and alarm records", () => {
  const id = Buffer.from('0000000000001234', 'hex');

  it('a lease: leasepb.Lease{ID, TTL, RemainingTTL} and back', () => {
    const plinth = Buffer.from('000000000000000a0000000000000005', 'hex');
    const etcd = leaseToEtcd(id, plinth);
    expect(etcd.toString('hex')).toBe('08b42410' + '0a' + '18' + '05');
    expect(decodeLeaseRecord(etcd)).toEqual({ ttl: 10, remainingTtl: 5 });
    // No remaining TTL: the field is left out, as Go leaves zero values out.
    expect(leaseToEtcd(id, Buffer.from('000000000000003c0000000000000000', 'hex')).toString('hex')).toBe('08b42410' + '3c');
  });

  it('an alarm: etcdserverpb.AlarmMember{MemberID, Alarm} and back', () => {
    const plinth = Buffer.from('8e9e05c52164694d01', 'hex'); // NOSPACE for the default member
    const etcd = alarmKeyToEtcd(plinth);
    expect(etcd.toString('hex')).toBe('08cdd2918bd2b881cf8e01' + '1001');
    expect(decodeAlarmKey(etcd)).toEqual({ memberId: 0x8e9e05c52164694dn, alarm: 1 });
  });

  it("Plinth writes etcd's records and reads them and its earlier fixed-width ones", () => {
    expect(encodeLeaseRecord(0x1234n, 10, 5).toString('hex')).toBe('08b42410' + '0a' + '18' + '05');
    expect(decodeLeaseRecord(encodeLeaseRecord(0x1234n, 10, 5))).toEqual({ ttl: 10, remainingTtl: 5 });
    expect(decodeLeaseRecord(Buffer.from('000000000000000a0000000000000005', 'hex'))).toEqual({ ttl: 10, remainingTtl: 5 });
    const member = 0x8e9e05c52164694dn;
    expect(encodeAlarmKey(member, 1).toString('hex')).toBe('08cdd2918bd2b881cf8e01' + '1001');
    expect(decodeAlarmKey(encodeAlarmKey(member, 1))).toEqual({ memberId: member, alarm: 1 });
    expect(decodeAlarmKey(legacyAlarmKey(member, 2))).toEqual({ memberId: member, alarm: 2 });
  });

  it("snapshots convert an earlier Plinth's records; etcd's and other buckets' pass through", () => {
    const k = Buffer.from('k');
    const v = Buffer.from('v');
    expect(entryToEtcd('key', k, v)).toEqual([k, v]);
    expect(entryToEtcd('lease', k, v)).toEqual([k, v]);
    const etcdLease = encodeLeaseRecord(7n, 60, 0);
    expect(entryToEtcd('lease', Buffer.alloc(8), etcdLease)).toEqual([Buffer.alloc(8), etcdLease]);
    expect(entryToEtcd('alarm', encodeAlarmKey(5n, 1), v)).toEqual([encodeAlarmKey(5n, 1), v]);
    expect(entryToEtcd('alarm', legacyAlarmKey(5n, 1), v)).toEqual([encodeAlarmKey(5n, 1), v]);
  });
});
