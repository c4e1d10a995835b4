import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as protobuf from 'protobufjs';

// etcd's wire contract, loaded once from proto/ (same packages, names and field numbers as etcd 3.4).
// Field names are camelCase as protobufjs and @grpc/proto-loader present them.

/** proto/ at the repository root: found by walking up, so it works from src/ (tests) and dist/src/. */
export const PROTO_DIR = findProtoDir(__dirname);

function findProtoDir(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'proto', 'etcd'))) return join(dir, 'proto');
    if (dirname(dir) === dir) throw new Error(`proto/ not found above ${from}`);
  }
}
const PROTOBUFJS_DIR = join(require.resolve('protobufjs/package.json'), '..');

export const PROTO_FILES = [
  'etcd/etcdserver/etcdserverpb/rpc.proto',
  'etcd/etcdserver/etcdserverpb/raft_internal.proto',
  'etcd/etcdserver/api/v3lock/v3lockpb/v3lock.proto',
  'etcd/etcdserver/api/v3election/v3electionpb/v3election.proto',
];

/** How decoded messages look: int64 as decimal strings (ids exceed 2^53), enums as numbers, bytes as Buffers. */
export const OBJECT_OPTIONS: protobuf.IConversionOptions = {
  longs: String,
  enums: Number,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
};

let root: protobuf.Root | undefined;

export function etcdRoot(): protobuf.Root {
  if (root) return root;
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) =>
    target.startsWith('google/protobuf/') ? join(PROTOBUFJS_DIR, target) : join(PROTO_DIR, target);
  r.loadSync(PROTO_FILES);
  r.resolveAll();
  return (root = r);
}

const types = new Map<string, protobuf.Type>();

export function messageType(fullName: string): protobuf.Type {
  let t = types.get(fullName);
  if (!t) types.set(fullName, (t = etcdRoot().lookupType(fullName)));
  return t;
}

/** Encodes a plain object (as decode returns it) into protobuf bytes. */
export function encodeMessage(fullName: string, obj: Record<string, unknown>): Buffer {
  const t = messageType(fullName);
  return Buffer.from(t.encode(t.fromObject(obj)).finish());
}

export function decodeMessage(fullName: string, buf: Buffer): Record<string, any> {
  const t = messageType(fullName);
  return t.toObject(t.decode(buf), OBJECT_OPTIONS);
}
