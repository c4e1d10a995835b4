// authpb.User and authpb.Role, encoded by hand as gogo-protobuf's Marshal writes them (fields in order,
// empty bytes and zero enums left out, a non-nil message field always written, even when empty), so the
// authUsers / authRoles buckets hold etcd 3.4's bytes: a bolt data dir or snapshot moves between etcd and
// Plinth unchanged. Hand-written, as src/storage/etcd-layout.ts does for the lease and alarm buckets,
// because protobufjs writes proto3 zero values when present and would not give etcd's bytes.
import type { Permission } from './range-perms';

export interface UserAddOptions {
  noPassword: boolean;
}

export interface User {
  name: Buffer;
  /** bcrypt hash; empty for a no-password user. */
  password: Buffer;
  /** Kept sorted (etcd's UserGrantRole sorts; hasRootRole binary-searches). */
  roles: string[];
  /** etcd always sets it on UserAdd; absent only in records written otherwise. */
  options: UserAddOptions | undefined;
}

export interface Role {
  name: Buffer;
  keyPermission: Permission[];
}

class Writer {
  private readonly parts: Buffer[] = [];
  private readonly head: number[] = [];

  private flushHead(): void {
    if (this.head.length) {
      this.parts.push(Buffer.from(this.head));
      this.head.length = 0;
    }
  }
  varint(n: number): this {
    while (n >= 0x80) {
      this.head.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    this.head.push(n);
    return this;
  }
  bytes(field: number, b: Uint8Array): this {
    this.varint((field << 3) | 2).varint(b.length);
    this.flushHead();
    this.parts.push(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    return this;
  }
  finish(): Buffer {
    this.flushHead();
    return Buffer.concat(this.parts);
  }
}

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer, readonly what: string) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw new Error(`${this.what}: truncated varint`);
      const b = this.buf[this.pos++];
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 0x80;
    }
    throw new Error(`${this.what}: varint too long`);
  }
  bytes(): Buffer {
    const n = this.varint();
    if (this.pos + n > this.buf.length) throw new Error(`${this.what}: truncated field`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 5) this.pos += 4;
    else if (wire === 2) this.bytes();
    else throw new Error(`${this.what}: unexpected wire type ${wire}`);
    if (this.pos > this.buf.length) throw new Error(`${this.what}: truncated field`);
  }
}

const copy = (b: Buffer): Buffer => Buffer.from(b);

export function encodeUser(u: User): Buffer {
  const w = new Writer();
  if (u.name.length) w.bytes(1, u.name);
  if (u.password.length) w.bytes(2, u.password);
  for (const r of u.roles) w.bytes(3, Buffer.from(r, 'utf8'));
  if (u.options) {
    const o = new Writer();
    if (u.options.noPassword) o.varint((1 << 3) | 0).varint(1);
    w.bytes(4, o.finish());
  }
  return w.finish();
}

export function decodeUser(buf: Buffer): User {
  const r = new Reader(buf, 'authpb.User');
  const u: User = { name: Buffer.alloc(0), password: Buffer.alloc(0), roles: [], options: undefined };
  while (!r.done) {
    const tag = r.varint();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 1 && wire === 2) u.name = copy(r.bytes());
    else if (field === 2 && wire === 2) u.password = copy(r.bytes());
    else if (field === 3 && wire === 2) u.roles.push(r.bytes().toString('utf8'));
    else if (field === 4 && wire === 2) {
      const o = new Reader(r.bytes(), 'authpb.UserAddOptions');
      const opts: UserAddOptions = { noPassword: false };
      while (!o.done) {
        const t = o.varint();
        if (t >>> 3 === 1 && (t & 7) === 0) opts.noPassword = o.varint() !== 0;
        else o.skip(t & 7);
      }
      u.options = opts;
    } else r.skip(wire);
  }
  return u;
}

export function encodePermission(p: Permission): Buffer {
  const w = new Writer();
  if (p.permType) w.varint((1 << 3) | 0).varint(p.permType);
  if (p.key.length) w.bytes(2, p.key);
  if (p.rangeEnd.length) w.bytes(3, p.rangeEnd);
  return w.finish();
}

export function encodeRole(role: Role): Buffer {
  const w = new Writer();
  if (role.name.length) w.bytes(1, role.name);
  for (const p of role.keyPermission) w.bytes(2, encodePermission(p));
  return w.finish();
}

export function decodeRole(buf: Buffer): Role {
  const r = new Reader(buf, 'authpb.Role');
  const role: Role = { name: Buffer.alloc(0), keyPermission: [] };
  while (!r.done) {
    const tag = r.varint();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 1 && wire === 2) role.name = copy(r.bytes());
    else if (field === 2 && wire === 2) {
      const p = new Reader(r.bytes(), 'authpb.Permission');
      const perm: Permission = { permType: 0, key: Buffer.alloc(0), rangeEnd: Buffer.alloc(0) };
      while (!p.done) {
        const t = p.varint();
        const f = t >>> 3;
        if (f === 1 && (t & 7) === 0) perm.permType = p.varint();
        else if (f === 2 && (t & 7) === 2) perm.key = copy(p.bytes());
        else if (f === 3 && (t & 7) === 2) perm.rangeEnd = copy(p.bytes());
        else p.skip(t & 7);
      }
      role.keyPermission.push(perm);
    } else r.skip(wire);
  }
  return role;
}
