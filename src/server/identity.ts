import { createHash } from 'node:crypto';

// Member and cluster IDs derived as etcd derives them, so the same name, peer URLs and cluster token
// give the same IDs as a real etcd member started with them.

export function memberId(peerUrls: string[], clusterToken: string): bigint {
  const b = [...peerUrls].sort().join('') + clusterToken;
  return createHash('sha1').update(b).digest().readBigUInt64BE(0);
}

export function clusterId(memberIds: bigint[]): bigint {
  const ids = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const buf = Buffer.alloc(8 * ids.length);
  ids.forEach((id, i) => buf.writeBigUInt64BE(id, 8 * i));
  return createHash('sha1').update(buf).digest().readBigUInt64BE(0);
}
