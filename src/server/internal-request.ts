import type { DeleteRangeRequest, PutRequest, TxnRequest } from '../mvcc/types';
import * as c from '../wire/convert';
import { decodePutRequest, encodePutEntry } from '../wire/put-codec';
import { ProtoReader, varintSize, writeVarint } from '../mvcc/key-value';
import { decodeMessage, encodeMessage } from '../wire/root';

// What goes through the log: one write request, as etcd's InternalRaftRequest on the wire, so the
// WAL holds etcd's own encoding.

export interface AlarmRequest {
  action: number;
  memberId: bigint;
  alarm: number;
}

export type InternalRequest =
  | { put: PutRequest }
  | { deleteRange: DeleteRangeRequest }
  | { txn: TxnRequest }
  | { compaction: { revision: number; physical: boolean } }
  | { alarm: AlarmRequest }
  | { leaseGrant: { id: bigint; ttl: number } }
  | { leaseRevoke: { id: bigint } }
  | { leaseCheckpoint: { checkpoints: { id: bigint; remainingTtl: number }[] } }
  /** A member's name and client URLs, published through the log once it serves (etcd's v2 attributes PUT). */
  | { memberAttributes: { id: bigint; name: string; clientUrls: string[] } }
  /** An auth request (user, role, enable/disable), under etcd's InternalRaftRequest field for it. */
  | { auth: AuthRequest };

/**
 * The auth requests, by their InternalRaftRequest field (protobufjs's camelCase of etcd's names; etcd's
 * field numbers 1000-1204 in raft_internal.proto). Reads (user/role get and list) go through the log too,
 * as etcd's do.
 */
export const AUTH_KINDS = [
  'authEnable', 'authDisable', 'authenticate',
  'authUserAdd', 'authUserDelete', 'authUserGet', 'authUserChangePassword', 'authUserGrantRole', 'authUserRevokeRole', 'authUserList',
  'authRoleList', 'authRoleAdd', 'authRoleDelete', 'authRoleGet', 'authRoleGrantPermission', 'authRoleRevokePermission',
] as const;
export type AuthKind = (typeof AUTH_KINDS)[number];

/** Auth requests that need the root role (etcd's needAdminPermission); UserGet / RoleGet have their own rule. */
export const ADMIN_AUTH_KINDS: ReadonlySet<AuthKind> = new Set<AuthKind>([
  'authEnable', 'authDisable', 'authUserAdd', 'authUserDelete', 'authUserChangePassword', 'authUserGrantRole', 'authUserRevokeRole',
  'authRoleAdd', 'authRoleGrantPermission', 'authRoleRevokePermission', 'authRoleDelete', 'authUserList', 'authRoleList',
]);

/** The request as protobufjs decodes etcd's (camelCase; bytes as Buffers; absent messages null). */
export interface AuthRequest {
  kind: AuthKind;
  req: Record<string, any>;
}

/**
 * The bcrypt hash travels in the entry (computed before proposing), as etcd 3.5's `hashedPassword` field:
 * AuthUserAddRequest field 4, AuthUserChangePasswordRequest field 3; the plain password is not logged.
 * etcd 3.4's proto lacks the field, so it is written and read by hand.
 */
const HASHED_PASSWORD: Partial<Record<AuthKind, { outer: number; field: number; type: string }>> = {
  authUserAdd: { outer: 1100, field: 4, type: 'etcdserverpb.AuthUserAddRequest' },
  authUserChangePassword: { outer: 1103, field: 3, type: 'etcdserverpb.AuthUserChangePasswordRequest' },
};

function lengthDelimited(field: number, body: Buffer): Buffer {
  const tag = field * 8 + 2;
  const head = Buffer.allocUnsafe(varintSize(tag) + varintSize(body.length));
  writeVarint(head, writeVarint(head, 0, tag), body.length);
  return Buffer.concat([head, body]);
}

function encodeAuth(a: AuthRequest): Buffer {
  const hp = HASHED_PASSWORD[a.kind];
  if (!hp) return encodeMessage(TYPE, { [a.kind]: a.req });
  const { password: _password, hashedPassword, ...rest } = a.req;
  let body = encodeMessage(hp.type, rest);
  if (typeof hashedPassword === 'string' && hashedPassword !== '') body = Buffer.concat([body, lengthDelimited(hp.field, Buffer.from(hashedPassword, 'latin1'))]);
  return lengthDelimited(hp.outer, body);
}

/** The hashedPassword field of an auth entry's request, read by hand (undefined if absent). */
function readHashedPassword(buf: Buffer, outer: number, field: number): string | undefined {
  const find = (b: Buffer, want: number): Buffer | undefined => {
    const r = new ProtoReader(b);
    let found: Buffer | undefined;
    while (!r.done) {
      const tag = r.uint();
      const wire = tag & 7;
      if (Math.floor(tag / 8) === want && wire === 2) found = r.bytes();
      else r.skip(wire);
    }
    return found;
  };
  const sub = find(buf, outer);
  const hashed = sub && find(sub, field);
  return hashed === undefined ? undefined : hashed.toString('latin1');
}

/** etcd's store path for a member's attributes (membership.MemberAttributesStorePath). */
const ATTRIBUTES_PATH = /^\/0\/members\/([0-9a-f]{1,16})\/attributes$/;

const TYPE = 'etcdserverpb.InternalRaftRequest';

/** An entry that holds only a header (field 100) and a put (field 4), or undefined for anything else. */
function decodePutEntry(buf: Buffer): { put: PutRequest } | undefined {
  const r = new ProtoReader(buf);
  let put: Buffer | undefined;
  while (!r.done) {
    const tag = r.uint();
    if ((tag & 7) !== 2) return undefined;
    const field = tag >>> 3;
    if (field === 100) r.bytes();
    else if (field === 4 && !put) put = r.bytes();
    else return undefined;
    if (r.pos > buf.length) return undefined;
  }
  return put ? { put: decodePutRequest(put) } : undefined;
}

/** The request as an entry: header (with the request ID) first, then the request. */
export function encodeInternalRequest(r: InternalRequest, header?: Buffer): Buffer {
  if ('put' in r) return encodePutEntry(r.put, header); // by hand: every write goes through here
  const body = encodeBody(r);
  return header ? Buffer.concat([header, body]) : body;
}

function encodeBody(r: Exclude<InternalRequest, { put: PutRequest }>): Buffer {
  if ('deleteRange' in r) return encodeMessage(TYPE, { deleteRange: c.deleteRangeRequestToWire(r.deleteRange) });
  if ('txn' in r) return encodeMessage(TYPE, { txn: c.txnRequestToWire(r.txn) });
  if ('compaction' in r) return encodeMessage(TYPE, { compaction: r.compaction });
  if ('alarm' in r) return encodeMessage(TYPE, { alarm: { action: r.alarm.action, memberID: r.alarm.memberId.toString(), alarm: r.alarm.alarm } });
  if ('leaseGrant' in r) return encodeMessage(TYPE, { leaseGrant: { ID: r.leaseGrant.id.toString(), TTL: r.leaseGrant.ttl } });
  if ('leaseRevoke' in r) return encodeMessage(TYPE, { leaseRevoke: { ID: r.leaseRevoke.id.toString() } });
  if ('auth' in r) return encodeAuth(r.auth);
  if ('memberAttributes' in r) {
    const a = r.memberAttributes;
    // As etcd 3.4 publishes them: a v2 PUT of {"name","clientURLs"} at the member's attributes path.
    const val = JSON.stringify({ name: a.name, clientURLs: a.clientUrls });
    return encodeMessage(TYPE, { v2: { Method: 'PUT', Path: `/0/members/${a.id.toString(16)}/attributes`, Val: val } });
  }
  return encodeMessage(TYPE, {
    leaseCheckpoint: { checkpoints: r.leaseCheckpoint.checkpoints.map((c) => ({ ID: c.id.toString(), remainingTTL: c.remainingTtl })) },
  });
}

export function decodeInternalRequest(buf: Buffer): InternalRequest {
  // Most entries are puts (a header and a PutRequest): read by hand, as they were written.
  const put = decodePutEntry(buf);
  if (put) return put;
  const m = decodeMessage(TYPE, buf);
  if (m.put) return { put: c.putRequest(m.put) };
  if (m.deleteRange) return { deleteRange: c.deleteRangeRequest(m.deleteRange) };
  if (m.txn) return { txn: c.txnRequest(m.txn) };
  if (m.compaction) return { compaction: { revision: Number(m.compaction.revision), physical: !!m.compaction.physical } };
  if (m.alarm) return { alarm: { action: m.alarm.action | 0, memberId: BigInt(m.alarm.memberID ?? 0), alarm: m.alarm.alarm | 0 } };
  if (m.leaseGrant) return { leaseGrant: { id: BigInt(m.leaseGrant.ID), ttl: Number(m.leaseGrant.TTL) } };
  if (m.leaseRevoke) return { leaseRevoke: { id: BigInt(m.leaseRevoke.ID) } };
  if (m.v2) {
    const path = ATTRIBUTES_PATH.exec(m.v2.Path ?? '');
    if (m.v2.Method === 'PUT' && path) {
      const v = JSON.parse(m.v2.Val ?? '{}') as { name?: unknown; clientURLs?: unknown };
      const clientUrls = Array.isArray(v.clientURLs) ? v.clientURLs.filter((u): u is string => typeof u === 'string') : [];
      return { memberAttributes: { id: BigInt('0x' + path[1]), name: typeof v.name === 'string' ? v.name : '', clientUrls } };
    }
    throw new Error(`internal request: unsupported v2 request ${m.v2.Method} ${m.v2.Path}`);
  }
  for (const kind of AUTH_KINDS) {
    const req = m[kind];
    if (!req) continue;
    const hp = HASHED_PASSWORD[kind];
    if (hp) {
      const hashedPassword = readHashedPassword(buf, hp.outer, hp.field);
      if (hashedPassword !== undefined) req.hashedPassword = hashedPassword;
    }
    return { auth: { kind, req } };
  }
  if (m.leaseCheckpoint) {
    return { leaseCheckpoint: { checkpoints: (m.leaseCheckpoint.checkpoints ?? []).map((c: any) => ({ id: BigInt(c.ID), remainingTtl: Number(c.remainingTTL) })) } };
  }
  throw new Error('internal request: no known request in entry');
}
