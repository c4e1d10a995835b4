import { describe, expect, it } from 'vitest';
import { alarmKeyFromEtcd, alarmKeyToEtcd, entryFromEtcd, entryToEtcd, leaseFromEtcd, leaseToEtcd } from '../../src/storage/etcd-layout';

// etcd's encodings, byte for byte as gogo-protobuf marshals them (zero fields left out, int64 as varint).
describe("etcd's lease and alarm records", () => {
  const id = Buffer.from('0000000000001234', 'hex');

  it('a lease: leasepb.Lease{ID, TTL, RemainingTTL} and back', () => {
    const plinth = Buffer.from('000000000000000a0000000000000005', 'hex');
    const etcd = leaseToEtcd(id, plinth);
    expect(etcd.toString('hex')).toBe('08b42410' + '0a' + '18' + '05');
    expect(leaseFromEtcd(etcd)).toEqual({ id: 0x1234n, value: plinth });
    // No remaining TTL: the field is left out, as Go leaves zero values out.
    expect(leaseToEtcd(id, Buffer.from('000000000000003c0000000000000000', 'hex')).toString('hex')).toBe('08b42410' + '3c');
  });

  it('an alarm: etcdserverpb.AlarmMember{MemberID, Alarm} and back', () => {
    const plinth = Buffer.from('8e9e05c52164694d01', 'hex'); // NOSPACE for the default member
    const etcd = alarmKeyToEtcd(plinth);
    expect(etcd.toString('hex')).toBe('08cdd2918bd2b881cf8e01' + '1001');
    expect(alarmKeyFromEtcd(etcd)).toEqual(plinth);
  });

  it('other buckets, and records without the expected shape, pass through unchanged', () => {
    const k = Buffer.from('k');
    const v = Buffer.from('v');
    expect(entryToEtcd('key', k, v)).toEqual([k, v]);
    expect(entryToEtcd('lease', k, v)).toEqual([k, v]);
    expect(entryFromEtcd('alarm', Buffer.from([0x0f]), v)).toEqual([Buffer.from([0x0f]), v]);
  });
});
