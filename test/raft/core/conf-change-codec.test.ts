// encodeConfChange / decodeConfChange against the bytes etcd 3.4's raftpb (gogoproto) writes. The
// vectors were made by marshalling these ConfChanges with go.etcd.io/etcd/raft/raftpb from Debian's
// golang-etcd-server-dev (GOPATH=/usr/share/gocode GO111MODULE=off go run; cc.Marshal(), hex).
import { describe, expect, it } from 'vitest';
import { decodeConfChange, encodeConfChange } from '../../../src/raft/core/raw-node';
import { ConfChangeType, RaftError, type ConfChange } from '../../../src/raft/core/types';

const member = '{"id":10276657743932975437,"peerURLs":["http://localhost:2380"],"name":"default"}';
const vectors: [ConfChange, string][] = [
  [{ id: 0n, type: ConfChangeType.ADD_NODE, nodeId: 1n, context: Buffer.alloc(0) }, '080010001801'],
  [{ id: 1n, type: ConfChangeType.REMOVE_NODE, nodeId: 2n, context: Buffer.from('ctx') }, '0801100118022203637478'],
  [
    { id: 12345678901234n, type: ConfChangeType.UPDATE_NODE, nodeId: 0x8e9e05c52164694dn, context: Buffer.from(member) },
    '08f2dfb89ea7e702100218cdd2918bd2b881cf8e0122517b226964223a31303237363635373734333933323937353433372c227065657255524c73223a5b22687474703a2f2f6c6f63616c686f73743a32333830225d2c226e616d65223a2264656661756c74227d',
  ],
  [{ id: (1n << 64n) - 1n, type: ConfChangeType.ADD_LEARNER_NODE, nodeId: (1n << 64n) - 1n, context: Buffer.alloc(0) }, '08ffffffffffffffffff01100318ffffffffffffffffff01'],
];

describe('ConfChange encoding', () => {
  it.each(vectors)('%# encodes as gogoproto does and decodes back', (cc, hex) => {
    expect(encodeConfChange(cc).toString('hex')).toBe(hex);
    expect(decodeConfChange(Buffer.from(hex, 'hex'))).toEqual(cc);
  });

  it('skips unknown fields, as protobuf does', () => {
    // Field 5 varint 7, field 6 fixed64, field 7 bytes "ab", field 8 fixed32, then NodeID=3.
    const b = Buffer.from('2807' + '31' + '0102030405060708' + '3a026162' + '45' + '01020304' + '1803', 'hex');
    expect(decodeConfChange(b)).toEqual({ id: 0n, type: ConfChangeType.ADD_NODE, nodeId: 3n, context: Buffer.alloc(0) });
  });

  it.each([
    ['a truncated varint', '08ff'],
    ['a truncated context', '220561'],
    ['an unknown type', '1004'],
    ['a varint over 64 bits', '08ffffffffffffffffff02'],
    ['field number 0', '0001'],
    ['a group wire type', '0b'],
  ])('refuses %s with a RaftError', (_what, hex) => {
    expect(() => decodeConfChange(Buffer.from(hex, 'hex'))).toThrow(RaftError);
  });

  it('refuses to encode ids outside uint64 and unknown types', () => {
    expect(() => encodeConfChange({ id: -1n, type: ConfChangeType.ADD_NODE, nodeId: 1n, context: Buffer.alloc(0) })).toThrow(RaftError);
    expect(() => encodeConfChange({ id: 0n, type: ConfChangeType.ADD_NODE, nodeId: 1n << 64n, context: Buffer.alloc(0) })).toThrow(RaftError);
    expect(() => encodeConfChange({ id: 0n, type: 9 as ConfChangeType, nodeId: 1n, context: Buffer.alloc(0) })).toThrow(RaftError);
  });
});
