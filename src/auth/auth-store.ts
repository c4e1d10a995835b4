// The auth store: users, roles, permissions and the auth revision, after etcd 3.4's auth/store.go, with
// every precondition, error and revision bump in the same order as etcd's.
//
// Why it is shaped this way:
//   - Pure of gRPC. Methods take the decoded request objects (etcd's field names in protobufjs camelCase)
//     and return the response's fields (no header: that is the server's). Errors are src/errors.ts values.
//   - The mutating methods are what the applier calls for a committed entry: synchronous and
//     deterministic, so log order is apply order and a replay gives the same state. bcrypt is slow
//     (tens of ms at cost 10), so it never runs here: etcd 3.4 hashes inside the apply path (a different
//     salt on each member, the event loop blocked); Plinth hashes BEFORE proposing instead, with bcrypt's
//     async API (prepareUserAdd / prepareUserChangePassword, as etcd 3.5 does), and the hash travels in the
//     entry (`hashedPassword`), so every member stores the same bytes.
//   - Authenticate is split as etcd splits it: checkPassword (API layer, async bcrypt compare, before
//     proposing) and applyAuthenticate (apply path: assigns the token; its state changes happen before the
//     returned promise, only a JWT signature is awaited).
//   - Persisted exactly as etcd: bucket `auth` {authEnabled: 1 byte, authRevision: uint64 BE},
//     `authUsers` name → authpb.User, `authRoles` name → authpb.Role. Users and roles are also kept in
//     memory (the backend has no synchronous scan over its write buffer), loaded at open and on recover.
//   - Permission checks return the error to answer with (or undefined) instead of throwing: they run for
//     every request while auth is on.
import { Errors, type EtcdError } from '../errors';
import type { Backend } from '../storage';
import { decodeRole, decodeUser, encodeRole, encodeUser, type Role, type User } from './authpb';
import { comparePassword, effectiveBcryptCost, hashPassword } from './password';
import { PermType, UnifiedRangePermissions, type Permission, type PermTypeValue } from './range-perms';
import { NopTokenProvider, type AssignParams, type AuthInfo, type TokenProvider } from './tokens';

export type { AuthInfo } from './tokens';
export { PermType, type Permission } from './range-perms';

export const ROOT_USER = 'root';
export const ROOT_ROLE = 'root';

const ENABLE_FLAG_KEY = Buffer.from('authEnabled');
const REVISION_KEY = Buffer.from('authRevision');
const AUTH_ENABLED = Buffer.from([1]);
const AUTH_DISABLED = Buffer.from([0]);

export type Log = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface AuthStoreOptions {
  /** --bcrypt-cost; outside [4, 31] etcd's default 10 is used. */
  bcryptCost?: number;
  /** From --auth-token (tokens.ts newTokenProvider); default: none (Authenticate fails). */
  tokenProvider?: TokenProvider;
  log?: Log;
}

// Requests, as protobufjs decodes etcdserverpb's (camelCase; absent message fields may be null).
export interface UserAddRequest {
  name: string;
  password?: string;
  options?: { noPassword?: boolean } | null;
  /** bcrypt hash computed before proposing (prepareUserAdd); etcd 3.5's field name. */
  hashedPassword?: string;
}
export interface UserChangePasswordRequest {
  name: string;
  password?: string;
  hashedPassword?: string;
}
export interface NameRequest {
  name: string;
}
export interface RoleRequest {
  role: string;
}
export interface UserGrantRoleRequest {
  user: string;
  role: string;
}
export interface UserRevokeRoleRequest {
  name: string;
  role: string;
}
export interface RoleGrantPermissionRequest {
  name: string;
  perm?: { permType?: number; key?: Uint8Array; rangeEnd?: Uint8Array } | null;
}
export interface RoleRevokePermissionRequest {
  role: string;
  key?: Uint8Array;
  rangeEnd?: Uint8Array;
}

/** Go's string ordering: bytes of the UTF-8 encoding. */
function byteCmp(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Go's sort.SearchStrings: the first index whose element is ≥ x (the list is kept sorted). */
function searchStrings(list: readonly string[], x: string): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (byteCmp(list[mid], x) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function hasRootRole(u: User): boolean {
  const i = searchStrings(u.roles, ROOT_ROLE);
  return i < u.roles.length && u.roles[i] === ROOT_ROLE;
}

const EMPTY = Buffer.alloc(0);
const toBuf = (b: Uint8Array | null | undefined): Buffer =>
  !b ? EMPTY : Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);

export class AuthStore {
  private enabled = false;
  private rev = 0;
  private readonly users = new Map<string, User>();
  private readonly roles = new Map<string, Role>();
  /** etcd's rangePermCache: user name → merged permissions; rebuilt on every change that can alter it. */
  private permCache = new Map<string, UnifiedRangePermissions>();
  readonly bcryptCost: number;
  readonly tokenProvider: TokenProvider;
  private readonly log: Log | undefined;

  private constructor(private backend: Backend, opts: AuthStoreOptions) {
    const cost = effectiveBcryptCost(opts.bcryptCost);
    if (opts.bcryptCost !== undefined && cost !== opts.bcryptCost) {
      opts.log?.('warn', 'use default bcrypt cost instead of the invalid given cost', { 'min-cost': 4, 'max-cost': 31, 'default-cost': 10, 'given-cost': opts.bcryptCost });
    }
    this.bcryptCost = cost;
    this.tokenProvider = opts.tokenProvider ?? new NopTokenProvider();
    this.log = opts.log;
  }

  /** etcd's NewAuthStore: loads the state; a store that never had a revision gets revision 1. */
  static async open(backend: Backend, opts: AuthStoreOptions = {}): Promise<AuthStore> {
    const as = new AuthStore(backend, opts);
    await as.load();
    if (as.enabled) as.tokenProvider.enable();
    if (as.rev === 0) as.commitRevision();
    return as;
  }

  /** etcd's Recover: state from a (new) backend, after a snapshot was installed. */
  async recover(backend: Backend = this.backend): Promise<void> {
    this.backend = backend;
    await this.load();
    if (this.enabled) this.tokenProvider.enable();
  }

  private async load(): Promise<void> {
    const users = new Map<string, User>();
    const roles = new Map<string, Role>();
    await this.backend.scan('authUsers', EMPTY, undefined, (k, v) => {
      users.set(k.toString('utf8'), decodeUser(v));
    });
    await this.backend.scan('authRoles', EMPTY, undefined, (k, v) => {
      roles.set(k.toString('utf8'), decodeRole(v));
    });
    this.users.clear();
    this.roles.clear();
    for (const [k, u] of users) this.users.set(k, u);
    for (const [k, r] of roles) this.roles.set(k, r);
    const flag = this.backend.get('auth', ENABLE_FLAG_KEY);
    this.enabled = flag !== undefined && flag.equals(AUTH_ENABLED);
    const rev = this.backend.get('auth', REVISION_KEY);
    this.rev = rev && rev.length === 8 ? Number(rev.readBigUInt64BE(0)) : 0;
    this.refreshRangePermCache();
  }

  /** Stops the token provider's timers (etcd's Close disables it). */
  close(): void {
    this.tokenProvider.close();
  }

  // ------------------------------------------------------------------------------------------------
  // state

  get revision(): number {
    return this.rev;
  }

  isAuthEnabled(): boolean {
    return this.enabled;
  }

  private commitRevision(): void {
    this.rev++;
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(this.rev));
    this.backend.put('auth', REVISION_KEY, b);
  }

  private putUser(u: User): void {
    this.users.set(u.name.toString('utf8'), u);
    this.backend.put('authUsers', u.name, encodeUser(u));
  }

  private putRole(r: Role): void {
    this.roles.set(r.name.toString('utf8'), r);
    this.backend.put('authRoles', r.name, encodeRole(r));
  }

  private refreshRangePermCache(): void {
    const cache = new Map<string, UnifiedRangePermissions>();
    for (const [name, user] of this.users) {
      const perms: Permission[] = [];
      for (const roleName of user.roles) {
        const role = this.roles.get(roleName);
        if (role) perms.push(...role.keyPermission);
      }
      cache.set(name, new UnifiedRangePermissions(perms));
    }
    this.permCache = cache;
  }

  // ------------------------------------------------------------------------------------------------
  // enable / disable / authenticate

  authEnable(): Record<string, never> {
    if (this.enabled) {
      this.log?.('info', 'authentication is already enabled; ignored auth enable request');
      return {};
    }
    const root = this.users.get(ROOT_USER);
    if (!root) throw Errors.rootUserNotExist;
    if (!hasRootRole(root)) throw Errors.rootRoleNotExist;
    this.backend.put('auth', ENABLE_FLAG_KEY, AUTH_ENABLED);
    this.enabled = true;
    this.tokenProvider.enable();
    this.refreshRangePermCache();
    // etcd does not bump the revision here.
    this.log?.('info', 'enabled authentication');
    return {};
  }

  authDisable(): Record<string, never> {
    if (!this.enabled) return {};
    this.backend.put('auth', ENABLE_FLAG_KEY, AUTH_DISABLED);
    this.commitRevision();
    this.enabled = false;
    this.tokenProvider.disable();
    this.log?.('info', 'disabled authentication');
    return {};
  }

  /**
   * etcd's CheckPassword (API layer, before proposing Authenticate): the auth revision the password was
   * checked at. bcrypt runs on the thread pool.
   */
  async checkPassword(name: string, password: string): Promise<number> {
    if (!this.enabled) throw Errors.authNotEnabled;
    const user = this.users.get(name);
    if (!user) throw Errors.authFailed;
    if (user.options?.noPassword) throw Errors.noPasswordUser;
    const revision = this.rev;
    if (!(await comparePassword(password, user.password))) {
      this.log?.('info', 'invalid password', { 'user-name': name });
      throw Errors.authFailed;
    }
    return revision;
  }

  /** A fresh simple-token prefix to put in the proposed Authenticate entry ('' for JWT). */
  genTokenPrefix(): string {
    return this.tokenProvider.genTokenPrefix();
  }

  /**
   * etcd's Authenticate, the apply path: the password was checked before proposing. `params` carries the
   * entry's index and the proposer's simple-token prefix. Checks and the token's registration happen
   * synchronously within the call.
   */
  async applyAuthenticate(name: string, params: AssignParams = {}): Promise<{ token: string }> {
    if (!this.enabled) throw Errors.authNotEnabled;
    const user = this.users.get(name);
    if (!user) throw Errors.authFailed;
    if (user.options?.noPassword) throw Errors.authFailed;
    const token = await this.tokenProvider.assign(name, this.rev, params);
    this.log?.('debug', 'authenticated a user', { 'user-name': name });
    return { token };
  }

  /**
   * Check and assign in one step, for a caller without a log in between (tests, tools): etcd's
   * EtcdServer.Authenticate loop, retried when the auth revision moved while the password was checked.
   */
  async authenticate(name: string, password: string, params: AssignParams = {}): Promise<{ token: string }> {
    for (;;) {
      const checked = await this.checkPassword(name, password);
      const resp = await this.applyAuthenticate(name, { index: params.index ?? 0, simpleTokenPrefix: params.simpleTokenPrefix ?? this.genTokenPrefix() });
      if (checked === this.rev) return resp;
      this.log?.('info', 'revision when password checked became stale; retrying');
    }
  }

  /** The user and revision a token stands for (etcd's AuthInfoFromCtx); refused with "invalid auth token". */
  async authInfoFromToken(token: string): Promise<AuthInfo> {
    const info = await this.tokenProvider.info(token, this.rev);
    if (!info) {
      this.log?.('warn', 'invalid auth token', { token });
      throw Errors.invalidAuthToken;
    }
    return info;
  }

  // ------------------------------------------------------------------------------------------------
  // before proposing: bcrypt off the event loop

  /** Hashes the password with the store's cost (async), to propose the request with `hashedPassword`. */
  async prepareUserAdd<R extends UserAddRequest>(r: R): Promise<R & { hashedPassword?: string }> {
    if (!r.name) throw Errors.userEmpty;
    if (r.options?.noPassword) return r;
    return { ...r, hashedPassword: await hashPassword(r.password ?? '', this.bcryptCost) };
  }

  async prepareUserChangePassword<R extends UserChangePasswordRequest>(r: R): Promise<R & { hashedPassword: string }> {
    return { ...r, hashedPassword: await hashPassword(r.password ?? '', this.bcryptCost) };
  }

  // ------------------------------------------------------------------------------------------------
  // users (apply path)

  userAdd(r: UserAddRequest): Record<string, never> {
    if (!r.name) throw Errors.userEmpty;
    const noPassword = !!r.options?.noPassword;
    let hashed = EMPTY;
    if (!noPassword) {
      if (r.hashedPassword === undefined) throw new Error('auth: userAdd needs hashedPassword (prepareUserAdd before proposing)');
      hashed = Buffer.from(r.hashedPassword, 'latin1');
    }
    if (this.users.has(r.name)) throw Errors.userAlreadyExist;
    this.putUser({ name: Buffer.from(r.name, 'utf8'), password: hashed, roles: [], options: { noPassword } });
    this.commitRevision();
    this.refreshRangePermCache();
    this.log?.('info', 'added a user', { 'user-name': r.name });
    return {};
  }

  userDelete(r: NameRequest): Record<string, never> {
    if (this.enabled && r.name === ROOT_USER) {
      this.log?.('warn', "cannot delete 'root' user", { 'user-name': r.name });
      throw Errors.invalidAuthMgmt;
    }
    const user = this.users.get(r.name);
    if (!user) throw Errors.userNotFound;
    this.users.delete(r.name);
    this.backend.delete('authUsers', user.name);
    this.commitRevision();
    this.refreshRangePermCache();
    this.tokenProvider.invalidateUser(r.name);
    this.log?.('info', 'deleted a user', { 'user-name': r.name, 'user-roles': user.roles });
    return {};
  }

  userChangePassword(r: UserChangePasswordRequest): Record<string, never> {
    if (r.hashedPassword === undefined) throw new Error('auth: userChangePassword needs hashedPassword (prepareUserChangePassword before proposing)');
    const user = this.users.get(r.name);
    if (!user) throw Errors.userNotFound;
    this.putUser({ name: Buffer.from(r.name, 'utf8'), roles: user.roles, password: Buffer.from(r.hashedPassword, 'latin1'), options: user.options });
    this.commitRevision();
    this.refreshRangePermCache();
    this.tokenProvider.invalidateUser(r.name);
    this.log?.('info', 'changed a password of a user', { 'user-name': r.name, 'user-roles': user.roles });
    return {};
  }

  userGrantRole(r: UserGrantRoleRequest): Record<string, never> {
    const user = this.users.get(r.user);
    if (!user) throw Errors.userNotFound;
    // The root role need not exist as a role: granting it makes the user root.
    if (r.role !== ROOT_ROLE && !this.roles.has(r.role)) throw Errors.roleNotFound;
    const i = searchStrings(user.roles, r.role);
    if (i < user.roles.length && user.roles[i] === r.role) {
      this.log?.('warn', 'ignored grant role request to a user', { 'user-name': r.user, 'duplicate-role-name': r.role });
      return {};
    }
    const roles = [...user.roles, r.role].sort(byteCmp);
    this.putUser({ ...user, roles });
    this.commitRevision();
    this.refreshRangePermCache();
    this.log?.('info', 'granted a role to a user', { 'user-name': r.user, 'added-role-name': r.role });
    return {};
  }

  userGet(r: NameRequest): { roles: string[] } {
    const user = this.users.get(r.name);
    if (!user) throw Errors.userNotFound;
    return { roles: [...user.roles] };
  }

  userList(): { users: string[] } {
    return { users: [...this.users.keys()].sort(byteCmp) };
  }

  userRevokeRole(r: UserRevokeRoleRequest): Record<string, never> {
    if (this.enabled && r.name === ROOT_USER && r.role === ROOT_ROLE) {
      this.log?.('warn', "'root' user cannot revoke 'root' role", { 'user-name': r.name, 'role-name': r.role });
      throw Errors.invalidAuthMgmt;
    }
    const user = this.users.get(r.name);
    if (!user) throw Errors.userNotFound;
    const roles = user.roles.filter((x) => x !== r.role);
    if (roles.length === user.roles.length) throw Errors.roleNotGranted;
    this.putUser({ name: user.name, password: user.password, options: user.options, roles });
    this.commitRevision();
    this.refreshRangePermCache();
    this.log?.('info', 'revoked a role from a user', { 'user-name': r.name, 'revoked-role-name': r.role });
    return {};
  }

  /** etcd's HasRole (the applier's RoleGet check for non-root users). */
  hasRole(user: string, role: string): boolean {
    const u = this.users.get(user);
    if (!u) return false;
    return u.roles.includes(role);
  }

  // ------------------------------------------------------------------------------------------------
  // roles (apply path)

  roleAdd(r: NameRequest): Record<string, never> {
    if (!r.name) throw Errors.roleEmpty;
    if (this.roles.has(r.name)) throw Errors.roleAlreadyExist;
    this.putRole({ name: Buffer.from(r.name, 'utf8'), keyPermission: [] });
    this.commitRevision();
    // As etcd: no permission-cache refresh (no user can hold a role that did not exist).
    this.log?.('info', 'created a role', { 'role-name': r.name });
    return {};
  }

  roleGet(r: RoleRequest): { perm: Permission[] } {
    const role = this.roles.get(r.role);
    if (!role) throw Errors.roleNotFound;
    return { perm: role.keyPermission.map((p) => ({ permType: p.permType, key: Buffer.from(p.key), rangeEnd: Buffer.from(p.rangeEnd) })) };
  }

  roleList(): { roles: string[] } {
    return { roles: [...this.roles.keys()].sort(byteCmp) };
  }

  roleDelete(r: RoleRequest): Record<string, never> {
    if (this.enabled && r.role === ROOT_ROLE) {
      this.log?.('warn', "cannot delete 'root' role", { 'role-name': r.role });
      throw Errors.invalidAuthMgmt;
    }
    const role = this.roles.get(r.role);
    if (!role) throw Errors.roleNotFound;
    this.roles.delete(r.role);
    this.backend.delete('authRoles', role.name);
    for (const user of [...this.users.values()]) {
      const roles = user.roles.filter((x) => x !== r.role);
      if (roles.length === user.roles.length) continue;
      this.putUser({ name: user.name, password: user.password, options: user.options, roles });
    }
    this.commitRevision();
    this.refreshRangePermCache();
    this.log?.('info', 'deleted a role', { 'role-name': r.role });
    return {};
  }

  roleGrantPermission(r: RoleGrantPermissionRequest): Record<string, never> {
    const role = this.roles.get(r.name);
    if (!role) throw Errors.roleNotFound;
    const perm: Permission = { permType: r.perm?.permType ?? 0, key: Buffer.from(toBuf(r.perm?.key)), rangeEnd: Buffer.from(toBuf(r.perm?.rangeEnd)) };
    const perms = role.keyPermission.map((p) => ({ ...p }));
    // sort.Search: the first permission whose key is ≥ the new one's.
    let lo = 0;
    let hi = perms.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (Buffer.compare(toBuf(perms[mid].key), toBuf(perm.key)) < 0) lo = mid + 1;
      else hi = mid;
    }
    const at = perms[lo];
    if (at && toBuf(at.key).equals(toBuf(perm.key)) && toBuf(at.rangeEnd).equals(toBuf(perm.rangeEnd))) {
      at.permType = perm.permType; // update the existing permission
    } else {
      perms.push(perm);
      perms.sort((a, b) => Buffer.compare(toBuf(a.key), toBuf(b.key)));
    }
    this.putRole({ name: role.name, keyPermission: perms });
    this.commitRevision();
    this.refreshRangePermCache();
    this.log?.('info', 'granted/updated a permission to a user', { 'role-name': r.name, 'permission-name': perm.permType });
    return {};
  }

  roleRevokePermission(r: RoleRevokePermissionRequest): Record<string, never> {
    const role = this.roles.get(r.role);
    if (!role) throw Errors.roleNotFound;
    const key = toBuf(r.key);
    const rangeEnd = toBuf(r.rangeEnd);
    const kept = role.keyPermission.filter((p) => !toBuf(p.key).equals(key) || !toBuf(p.rangeEnd).equals(rangeEnd));
    if (kept.length === role.keyPermission.length) throw Errors.permissionNotGranted;
    this.putRole({ name: role.name, keyPermission: kept });
    this.commitRevision();
    this.refreshRangePermCache();
    this.log?.('info', 'revoked a permission on range', { 'role-name': r.role, key: key.toString(), 'range-end': rangeEnd.toString() });
    return {};
  }

  // ------------------------------------------------------------------------------------------------
  // permission checks (every request while auth is on): the error to answer with, or undefined

  private isOpPermitted(info: AuthInfo | undefined, key: Uint8Array, rangeEnd: Uint8Array | undefined, permType: PermTypeValue): EtcdError | undefined {
    if (!this.enabled) return undefined;
    // Only an empty AuthInfo has revision 0: no user given.
    if (!info || info.revision === 0) return Errors.userEmpty;
    if (info.revision < this.rev) {
      this.log?.('warn', 'request auth revision is less than current node auth revision', { 'current node auth revision': this.rev, 'request auth revision': info.revision });
      return Errors.authOldRevision;
    }
    const user = this.users.get(info.username);
    if (!user) {
      this.log?.('warn', 'cannot find a user for permission check', { 'user-name': info.username });
      return Errors.permissionDenied;
    }
    if (hasRootRole(user)) return undefined; // the root role may do anything
    const perms = this.permCache.get(info.username);
    if (perms && perms.permits(key, rangeEnd, permType)) return undefined;
    return Errors.permissionDenied;
  }

  isRangePermitted(info: AuthInfo | undefined, key: Uint8Array, rangeEnd?: Uint8Array): EtcdError | undefined {
    return this.isOpPermitted(info, key, rangeEnd, PermType.READ);
  }

  isPutPermitted(info: AuthInfo | undefined, key: Uint8Array): EtcdError | undefined {
    return this.isOpPermitted(info, key, undefined, PermType.WRITE);
  }

  isDeleteRangePermitted(info: AuthInfo | undefined, key: Uint8Array, rangeEnd?: Uint8Array): EtcdError | undefined {
    return this.isOpPermitted(info, key, rangeEnd, PermType.WRITE);
  }

  /** etcd's IsAdminPermitted: auth management, maintenance and member calls need the root role. */
  isAdminPermitted(info: AuthInfo | undefined): EtcdError | undefined {
    if (!this.enabled) return undefined;
    if (!info || info.username === '') return Errors.userEmpty;
    const user = this.users.get(info.username);
    if (!user) return Errors.userNotFound;
    if (!hasRootRole(user)) return Errors.permissionDenied;
    return undefined;
  }
}
