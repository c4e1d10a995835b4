import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthStore, PermType, type AuthStoreOptions } from '../../src/auth/auth-store';
import { decodeRole, decodeUser, encodeRole, encodeUser } from '../../src/auth/authpb';
import { comparePassword, hashPassword } from '../../src/auth/password';
import { newTokenProvider, SimpleTokenProvider } from '../../src/auth/tokens';
import { Errors } from '../../src/errors';
import { openBackend, type Backend, type EngineKind } from '../../src/storage';
import { Backend as BackendClass } from '../../src/storage/backend';

// The auth store against etcd 3.4's store.go / store_test.go: every operation, its preconditions and
// errors in etcd's order, the revision bumps, persistence in etcd's layout, and the permission checks.

const b = (s: string) => Buffer.from(s);
const COST = 4; // bcrypt.MinCost, as etcd's tests

describe('auth store', () => {
  const dirs: string[] = [];
  const stores: AuthStore[] = [];
  afterEach(() => {
    stores.splice(0).forEach((s) => s.close());
    dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
  });

  let clock = 1_000_000;
  async function open(kind: EngineKind = 'memory', dir?: string, opts: AuthStoreOptions = {}) {
    dir ??= mkdtempSync(join(tmpdir(), 'plinth-auth-'));
    dirs.push(dir);
    const backend = await openBackend(kind, { dir });
    const tokens = new SimpleTokenProvider({ now: () => clock });
    const as = await AuthStore.open(backend, { bcryptCost: COST, tokenProvider: tokens, ...opts });
    stores.push(as);
    return { as, backend, dir, tokens };
  }

  async function userAdd(as: AuthStore, name: string, password = 'pw', noPassword = false) {
    return as.userAdd(await as.prepareUserAdd({ name, password, options: { noPassword } }));
  }

  /** etcd's enableAuthAndCreateRoot. */
  async function enableWithRoot(as: AuthStore) {
    await userAdd(as, 'root', 'root');
    as.roleAdd({ name: 'root' });
    as.userGrantRole({ user: 'root', role: 'root' });
    as.authEnable();
  }

  const info = (as: AuthStore, username: string) => ({ username, revision: as.revision });

  it('starts at auth revision 1, written as 8 bytes big-endian; reopening keeps it (TestNewAuthStoreRevision)', async () => {
    const { as, backend } = await open();
    expect(as.revision).toBe(1);
    expect(backend.get('auth', b('authRevision'))).toEqual(Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]));
    await enableWithRoot(as);
    const rev = as.revision;
    expect(rev).toBe(4); // user add, role add, grant: enable itself does not bump
    await backend.commit();
    const again = await AuthStore.open(new BackendClass(backend.engine), { bcryptCost: COST });
    stores.push(again);
    expect(again.revision).toBe(rev);
    expect(again.isAuthEnabled()).toBe(true);
  });

  it('falls back to bcrypt cost 10 outside [4, 31] (TestNewAuthStoreBcryptCost)', async () => {
    for (const c of [3, 32]) expect((await open('memory', undefined, { bcryptCost: c })).as.bcryptCost).toBe(10);
    expect((await open('memory', undefined, { bcryptCost: 12 })).as.bcryptCost).toBe(12);
  });

  it('enables only with a root user holding the root role; enable twice is no error', async () => {
    const { as, backend } = await open();
    expect(() => as.authEnable()).toThrow(Errors.rootUserNotExist);
    await userAdd(as, 'root', 'r');
    expect(() => as.authEnable()).toThrow(Errors.rootRoleNotExist);
    // The root role need not exist as a role to be granted.
    as.userGrantRole({ user: 'root', role: 'root' });
    const rev = as.revision;
    as.authEnable();
    expect(as.isAuthEnabled()).toBe(true);
    expect(as.revision).toBe(rev);
    expect(backend.get('auth', b('authEnabled'))).toEqual(Buffer.from([1]));
    as.authEnable();
    as.authDisable();
    expect(as.isAuthEnabled()).toBe(false);
    expect(as.revision).toBe(rev + 1);
    expect(backend.get('auth', b('authEnabled'))).toEqual(Buffer.from([0]));
    as.authDisable(); // already off: nothing
    expect(as.revision).toBe(rev + 1);
  });

  it('adds users with etcd errors; no-password users cannot authenticate (TestUserAdd, TestUserNoPasswordAdd)', async () => {
    const { as, backend } = await open();
    await expect(as.prepareUserAdd({ name: '', password: 'x' })).rejects.toBe(Errors.userEmpty);
    expect(() => as.userAdd({ name: '', password: 'x', hashedPassword: 'h' })).toThrow(Errors.userEmpty);
    expect(Errors.userEmpty.message).toBe('etcdserver: user name is empty');
    await userAdd(as, 'foo', 'bar');
    const rev = as.revision;
    await expect(userAdd(as, 'foo', 'bar')).rejects.toBe(Errors.userAlreadyExist);
    expect(Errors.userAlreadyExist.message).toBe('etcdserver: user name already exists');
    expect(as.revision).toBe(rev);
    await userAdd(as, 'nopass', '', true);
    const stored = decodeUser(backend.get('authUsers', b('foo'))!);
    expect(stored.name.toString()).toBe('foo');
    expect(stored.password.toString()).toMatch(/^\$2a\$04\$/);
    expect(await comparePassword('bar', stored.password)).toBe(true);
    expect(stored.options).toEqual({ noPassword: false });
    // gogo writes the non-nil options message even when empty: 0x22 0x00 at the end.
    expect(backend.get('authUsers', b('foo'))!.subarray(-2)).toEqual(Buffer.from([0x22, 0]));
    expect(decodeUser(backend.get('authUsers', b('nopass'))!)).toMatchObject({ password: Buffer.alloc(0), options: { noPassword: true } });
    await enableWithRoot(as);
    await expect(as.authenticate('nopass', '')).rejects.toBe(Errors.noPasswordUser);
    await expect(as.applyAuthenticate('nopass', { index: 1, simpleTokenPrefix: 'dummy' })).rejects.toBe(Errors.authFailed);
    // A request without its hash is a caller bug, not an etcd answer.
    expect(() => as.userAdd({ name: 'x', password: 'y' })).toThrow(/hashedPassword/);
  });

  it('checks passwords with async bcrypt (TestCheckPassword)', async () => {
    const { as } = await open();
    await expect(as.checkPassword('foo', 'bar')).rejects.toBe(Errors.authNotEnabled);
    await enableWithRoot(as);
    await userAdd(as, 'foo', 'bar');
    await expect(as.checkPassword('foo-test', 'bar')).rejects.toBe(Errors.authFailed);
    await expect(as.checkPassword('foo', 'barbaz')).rejects.toBe(Errors.authFailed);
    expect(await as.checkPassword('foo', 'bar')).toBe(as.revision);
    const { token } = await as.authenticate('foo', 'bar', { index: 7, simpleTokenPrefix: 'abcdefghijklmnop' });
    expect(token).toBe('abcdefghijklmnop.7');
    expect(await as.authInfoFromToken(token)).toEqual({ username: 'foo', revision: as.revision });
    await expect(as.authInfoFromToken('nope.1')).rejects.toBe(Errors.invalidAuthToken);
  });

  it('refuses to authenticate while auth is off', async () => {
    const { as } = await open();
    await userAdd(as, 'foo', 'bar');
    await expect(as.authenticate('foo', 'bar')).rejects.toBe(Errors.authNotEnabled);
    await expect(as.applyAuthenticate('foo')).rejects.toBe(Errors.authNotEnabled);
  });

  it('deletes users; root only while auth is off; tokens of the user die (TestUserDelete)', async () => {
    const { as, backend, tokens } = await open();
    await enableWithRoot(as);
    await userAdd(as, 'foo', 'bar');
    const { token } = await as.authenticate('foo', 'bar');
    expect(tokens.size).toBe(1);
    const rev = as.revision;
    as.userDelete({ name: 'foo' });
    expect(as.revision).toBe(rev + 1);
    expect(backend.get('authUsers', b('foo'))).toBeUndefined();
    await expect(as.authInfoFromToken(token)).rejects.toBe(Errors.invalidAuthToken);
    expect(() => as.userDelete({ name: 'foo' })).toThrow(Errors.userNotFound);
    expect(Errors.userNotFound.message).toBe('etcdserver: user name not found');
    expect(() => as.userDelete({ name: 'root' })).toThrow(Errors.invalidAuthMgmt);
    expect(Errors.invalidAuthMgmt.message).toBe('etcdserver: invalid auth management');
    as.authDisable();
    as.userDelete({ name: 'root' });
    expect(as.userList().users).toEqual([]);
  });

  it('drops a deleted user from the permission cache (TestUserDeleteAndPermCache)', async () => {
    const { as } = await open();
    await enableWithRoot(as);
    await userAdd(as, 'foo', 'bar');
    as.roleAdd({ name: 'r' });
    as.roleGrantPermission({ name: 'r', perm: { permType: PermType.READ, key: b('k') } });
    as.userGrantRole({ user: 'foo', role: 'r' });
    expect(as.isRangePermitted(info(as, 'foo'), b('k'))).toBeUndefined();
    as.userDelete({ name: 'foo' });
    await userAdd(as, 'foo', 'bar');
    expect(as.isRangePermitted(info(as, 'foo'), b('k'))).toBe(Errors.permissionDenied);
  });

  it('changes passwords; old password and old tokens stop working (TestUserChangePassword)', async () => {
    const { as } = await open();
    await enableWithRoot(as);
    await userAdd(as, 'foo', 'bar');
    const { token } = await as.authenticate('foo', 'bar');
    as.userChangePassword(await as.prepareUserChangePassword({ name: 'foo', password: 'baz' }));
    await expect(as.authInfoFromToken(token)).rejects.toBe(Errors.invalidAuthToken);
    await expect(as.checkPassword('foo', 'bar')).rejects.toBe(Errors.authFailed);
    await as.checkPassword('foo', 'baz');
    await expect(as.prepareUserChangePassword({ name: 'nope', password: 'x' }).then((r) => as.userChangePassword(r))).rejects.toBe(Errors.userNotFound);
    expect(() => as.userChangePassword({ name: 'foo', password: 'x' })).toThrow(/hashedPassword/);
  });

  it('grants roles: sorted, duplicates ignored without a revision, unknown roles refused (TestUserGrant, TestRolesOrder)', async () => {
    const { as } = await open();
    await userAdd(as, 'user');
    expect(() => as.userGrantRole({ user: 'nobody', role: 'x' })).toThrow(Errors.userNotFound);
    expect(() => as.userGrantRole({ user: 'user', role: 'nope' })).toThrow(Errors.roleNotFound);
    expect(Errors.roleNotFound.message).toBe('etcdserver: role name not found');
    for (const r of ['role1', 'role2', 'abc', 'xyz', 'role3']) {
      as.roleAdd({ name: r });
      as.userGrantRole({ user: 'user', role: r });
    }
    const rev = as.revision;
    as.userGrantRole({ user: 'user', role: 'abc' });
    expect(as.revision).toBe(rev);
    expect(as.userGet({ name: 'user' }).roles).toEqual(['abc', 'role1', 'role2', 'role3', 'xyz']);
    expect(() => as.userGet({ name: 'nobody' })).toThrow(Errors.userNotFound);
    expect(as.hasRole('user', 'xyz')).toBe(true);
    expect(as.hasRole('user', 'root')).toBe(false);
    expect(as.hasRole('nobody', 'xyz')).toBe(false);
  });

  it('revokes roles; root from root only while auth is off (TestUserRevokePermission)', async () => {
    const { as } = await open();
    await enableWithRoot(as);
    await userAdd(as, 'foo');
    as.roleAdd({ name: 'r1' });
    as.userGrantRole({ user: 'foo', role: 'r1' });
    expect(() => as.userRevokeRole({ name: 'root', role: 'root' })).toThrow(Errors.invalidAuthMgmt);
    expect(() => as.userRevokeRole({ name: 'nobody', role: 'r1' })).toThrow(Errors.userNotFound);
    expect(() => as.userRevokeRole({ name: 'foo', role: 'r2' })).toThrow(Errors.roleNotGranted);
    expect(Errors.roleNotGranted.message).toBe('etcdserver: role is not granted to the user');
    const rev = as.revision;
    as.userRevokeRole({ name: 'foo', role: 'r1' });
    expect(as.revision).toBe(rev + 1);
    expect(as.userGet({ name: 'foo' }).roles).toEqual([]);
  });

  it('lists users and roles in byte order (TestListUsers)', async () => {
    const { as } = await open();
    for (const n of ['zed', 'alice', 'Bob', 'root']) await userAdd(as, n);
    for (const n of ['w', 'a', 'B']) as.roleAdd({ name: n });
    expect(as.userList().users).toEqual(['Bob', 'alice', 'root', 'zed']);
    expect(as.roleList().roles).toEqual(['B', 'a', 'w']);
  });

  it('adds, gets and deletes roles; deleting takes the role from every user (TestRoleAdd, TestRoleDelete)', async () => {
    const { as, backend } = await open();
    expect(() => as.roleAdd({ name: '' })).toThrow(Errors.roleEmpty);
    expect(Errors.roleEmpty.message).toBe('etcdserver: role name is empty');
    as.roleAdd({ name: 'r' });
    expect(() => as.roleAdd({ name: 'r' })).toThrow(Errors.roleAlreadyExist);
    expect(Errors.roleAlreadyExist.message).toBe('etcdserver: role name already exists');
    expect(as.roleGet({ role: 'r' })).toEqual({ perm: [] });
    expect(() => as.roleGet({ role: 'x' })).toThrow(Errors.roleNotFound);
    await enableWithRoot(as);
    await userAdd(as, 'u1');
    await userAdd(as, 'u2');
    as.userGrantRole({ user: 'u1', role: 'r' });
    as.userGrantRole({ user: 'u2', role: 'r' });
    expect(() => as.roleDelete({ role: 'root' })).toThrow(Errors.invalidAuthMgmt);
    expect(() => as.roleDelete({ role: 'x' })).toThrow(Errors.roleNotFound);
    const rev = as.revision;
    as.roleDelete({ role: 'r' });
    expect(as.revision).toBe(rev + 1); // one bump for the role and every user it left
    expect(as.userGet({ name: 'u1' }).roles).toEqual([]);
    expect(decodeUser(backend.get('authUsers', b('u2'))!).roles).toEqual([]);
    expect(backend.get('authRoles', b('r'))).toBeUndefined();
    as.authDisable();
    as.roleDelete({ role: 'root' });
  });

  it('grants permissions sorted by key, updating the type of an identical one (TestRoleGrantPermission)', async () => {
    const { as, backend } = await open();
    as.roleAdd({ name: 'r' });
    expect(() => as.roleGrantPermission({ name: 'x', perm: { permType: 0, key: b('k') } })).toThrow(Errors.roleNotFound);
    as.roleGrantPermission({ name: 'r', perm: { permType: PermType.WRITE, key: b('Keys'), rangeEnd: b('RangeEnd') } });
    as.roleGrantPermission({ name: 'r', perm: { permType: PermType.READ, key: b('A') } });
    as.roleGrantPermission({ name: 'r', perm: { permType: PermType.READ, key: b('z'), rangeEnd: Buffer.from([0]) } });
    const rev = as.revision;
    as.roleGrantPermission({ name: 'r', perm: { permType: PermType.READWRITE, key: b('Keys'), rangeEnd: b('RangeEnd') } });
    expect(as.revision).toBe(rev + 1);
    const perms = as.roleGet({ role: 'r' }).perm.map((p) => [p.permType, p.key.toString(), Buffer.from(p.rangeEnd).toString('hex')]);
    expect(perms).toEqual([
      [PermType.READ, 'A', ''],
      [PermType.READWRITE, 'Keys', b('RangeEnd').toString('hex')],
      [PermType.READ, 'z', '00'],
    ]);
    // Stored as etcd stores authpb.Role.
    const stored = backend.get('authRoles', b('r'))!;
    expect(decodeRole(stored).keyPermission.length).toBe(3);
    expect(encodeRole(decodeRole(stored))).toEqual(stored);
    // READ = 0 is left out of the permission's encoding: {key: "A"} is 0x12 0x01 'A'.
    expect(stored.subarray(0, 10)).toEqual(Buffer.from([0x0a, 0x01, 0x72, 0x12, 0x03, 0x12, 0x01, 0x41, 0x12, 0x12]));
  });

  it('revokes permissions by exact key and range end (TestRoleRevokePermission)', async () => {
    const { as } = await open();
    as.roleAdd({ name: 'r' });
    as.roleGrantPermission({ name: 'r', perm: { permType: PermType.WRITE, key: b('Keys'), rangeEnd: b('RangeEnd') } });
    expect(() => as.roleRevokePermission({ role: 'x', key: b('Keys'), rangeEnd: b('RangeEnd') })).toThrow(Errors.roleNotFound);
    expect(() => as.roleRevokePermission({ role: 'r', key: b('Keys') })).toThrow(Errors.permissionNotGranted);
    expect(Errors.permissionNotGranted.message).toBe('etcdserver: permission is not granted to the role');
    const rev = as.revision;
    as.roleRevokePermission({ role: 'r', key: b('Keys'), rangeEnd: b('RangeEnd') });
    expect(as.revision).toBe(rev + 1);
    expect(as.roleGet({ role: 'r' }).perm).toEqual([]);
  });

  it('checks key permissions as etcd (TestIsOpPermitted and the applier\'s cases)', async () => {
    const { as } = await open();
    await userAdd(as, 'foo');
    as.roleAdd({ name: 'rw' });
    as.roleAdd({ name: 'ro' });
    as.roleGrantPermission({ name: 'rw', perm: { permType: PermType.WRITE, key: b('Keys'), rangeEnd: b('RangeEnd') } });
    as.roleGrantPermission({ name: 'ro', perm: { permType: PermType.READ, key: b('dir/'), rangeEnd: b('dir0') } });
    as.userGrantRole({ user: 'foo', role: 'rw' });
    as.userGrantRole({ user: 'foo', role: 'ro' });
    // Auth off: everything passes, even without a user.
    expect(as.isPutPermitted(undefined, b('x'))).toBeUndefined();
    expect(as.isAdminPermitted(undefined)).toBeUndefined();
    await enableWithRoot(as);
    const foo = info(as, 'foo');
    expect(as.isDeleteRangePermitted(foo, b('Keys'), b('RangeEnd'))).toBeUndefined();
    expect(as.isPutPermitted(foo, b('Kz'))).toBeUndefined();
    expect(as.isRangePermitted(foo, b('Kz'))).toBe(Errors.permissionDenied);
    expect(as.isRangePermitted(foo, b('dir/a'), b('dir/b'))).toBeUndefined();
    expect(as.isPutPermitted(foo, b('dir/a'))).toBe(Errors.permissionDenied);
    expect(as.isRangePermitted(foo, b('dir/'), Buffer.from([0]))).toBe(Errors.permissionDenied);
    // Root may do anything, other users nothing; no user: "user name is empty".
    expect(as.isDeleteRangePermitted(info(as, 'root'), b('\0'), Buffer.from([0]))).toBeUndefined();
    expect(as.isPutPermitted(info(as, 'ghost'), b('k'))).toBe(Errors.permissionDenied);
    expect(as.isPutPermitted(undefined, b('k'))).toBe(Errors.userEmpty);
    expect(as.isPutPermitted({ username: 'foo', revision: 0 }, b('k'))).toBe(Errors.userEmpty);
    // A token minted before an auth change carries an old revision.
    const old = info(as, 'foo');
    as.roleAdd({ name: 'another' });
    expect(as.isPutPermitted(old, b('Kz'))).toBe(Errors.authOldRevision);
    expect(Errors.authOldRevision.message).toBe('etcdserver: revision of auth store is old');
  });

  it('with JWT, a token minted before an auth change is refused as old', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = Buffer.from(ec.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string);
    const tokenProvider = await newTokenProvider('jwt,priv-key=k,sign-method=ES256', { readFile: () => pem });
    const { as } = await open('memory', undefined, { tokenProvider });
    await enableWithRoot(as);
    const { token } = await as.authenticate('root', 'root');
    const ai = await as.authInfoFromToken(token);
    expect(ai).toEqual({ username: 'root', revision: as.revision });
    expect(as.isPutPermitted(ai, b('k'))).toBeUndefined();
    as.roleAdd({ name: 'x' });
    expect(as.isPutPermitted(await as.authInfoFromToken(token), b('k'))).toBe(Errors.authOldRevision);
    await expect(as.authInfoFromToken(token + 'x')).rejects.toBe(Errors.invalidAuthToken);
  });

  it('checks admin permission (TestIsAdminPermitted)', async () => {
    const { as } = await open();
    await enableWithRoot(as);
    await userAdd(as, 'foo');
    expect(as.isAdminPermitted(info(as, 'root'))).toBeUndefined();
    expect(as.isAdminPermitted({ username: '', revision: 1 })).toBe(Errors.userEmpty);
    expect(as.isAdminPermitted(undefined)).toBe(Errors.userEmpty);
    expect(as.isAdminPermitted(info(as, 'nobody'))).toBe(Errors.userNotFound);
    expect(as.isAdminPermitted(info(as, 'foo'))).toBe(Errors.permissionDenied);
  });

  it('retries authenticate when the revision moves while bcrypt runs (etcd\'s Authenticate loop)', async () => {
    const { as } = await open();
    await enableWithRoot(as);
    await userAdd(as, 'foo', 'bar');
    const p = as.authenticate('foo', 'bar');
    as.roleAdd({ name: 'meanwhile' }); // the revision moves during the first compare
    const { token } = await p;
    expect((await as.authInfoFromToken(token)).revision).toBe(as.revision);
  });

  it('does not block the event loop while hashing', async () => {
    const { as } = await open('memory', undefined, { bcryptCost: 10 });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = Date.now();
    const r = await as.prepareUserAdd({ name: 'slow', password: 'pw' });
    clearInterval(timer);
    expect(r.hashedPassword).toMatch(/^\$2a\$10\$/);
    // At cost 10 a hash takes tens of ms: the timer kept firing meanwhile.
    if (Date.now() - t0 > 20) expect(ticks).toBeGreaterThan(2);
  });

  for (const kind of ['memory', 'lmdb'] as const) {
    it(`survives a reopen with the same state and permissions (${kind}) (TestRecover)`, async () => {
      const { as, backend, dir } = await open(kind);
      await enableWithRoot(as);
      await userAdd(as, 'foo', 'bar');
      await userAdd(as, 'np', '', true);
      as.roleAdd({ name: 'r' });
      as.roleGrantPermission({ name: 'r', perm: { permType: PermType.READWRITE, key: b('a'), rangeEnd: b('c') } });
      as.userGrantRole({ user: 'foo', role: 'r' });
      const rev = as.revision;
      await backend.commit();
      let backend2: Backend;
      if (kind === 'memory') backend2 = new BackendClass(backend.engine);
      else {
        await backend.close();
        backend2 = await openBackend(kind, { dir });
      }
      const as2 = await AuthStore.open(backend2, { bcryptCost: COST, tokenProvider: new SimpleTokenProvider() });
      stores.push(as2);
      expect(as2.revision).toBe(rev);
      expect(as2.isAuthEnabled()).toBe(true);
      expect(as2.userList().users).toEqual(['foo', 'np', 'root']);
      expect(as2.roleList().roles).toEqual(['r', 'root']);
      expect(as2.userGet({ name: 'foo' }).roles).toEqual(['r']);
      expect(as2.isPutPermitted(info(as2, 'foo'), b('b'))).toBeUndefined();
      expect(as2.isPutPermitted(info(as2, 'foo'), b('c'))).toBe(Errors.permissionDenied);
      expect(await as2.checkPassword('foo', 'bar')).toBe(rev);
      await expect(as2.checkPassword('np', '')).rejects.toBe(Errors.noPasswordUser);
      if (kind !== 'memory') await backend2.close();
    });
  }

  it('recovers from another backend (a snapshot), rebuilding the permission cache (TestRecoverFromSnapshot)', async () => {
    const { as: a } = await open();
    await enableWithRoot(a);
    await userAdd(a, 'foo');
    a.roleAdd({ name: 'r' });
    a.roleGrantPermission({ name: 'r', perm: { permType: PermType.READ, key: b('k') } });
    a.userGrantRole({ user: 'foo', role: 'r' });
    const { as: bStore, backend: other } = await open();
    // Copy a's state into the other backend, as a snapshot install would.
    other.put('auth', b('authEnabled'), Buffer.from([1]));
    const rev = Buffer.alloc(8);
    rev.writeBigUInt64BE(BigInt(a.revision));
    other.put('auth', b('authRevision'), rev);
    for (const n of a.userList().users) {
      const roles = a.userGet({ name: n }).roles;
      other.put('authUsers', b(n), encodeUser({ name: b(n), password: Buffer.from(await hashPassword('pw', 4)), roles, options: { noPassword: false } }));
    }
    for (const n of a.roleList().roles) other.put('authRoles', b(n), encodeRole({ name: b(n), keyPermission: a.roleGet({ role: n }).perm }));
    await bStore.recover(other);
    expect(bStore.revision).toBe(a.revision);
    expect(bStore.isAuthEnabled()).toBe(true);
    expect(bStore.isRangePermitted(info(bStore, 'foo'), b('k'))).toBeUndefined();
  });

  it('reads a user record with unknown fields and round-trips etcd\'s bytes', () => {
    const u = { name: b('root'), password: b('$2a$04$x'), roles: ['a', 'root'], options: { noPassword: false } };
    const enc = encodeUser(u);
    expect(enc).toEqual(Buffer.concat([Buffer.from([0x0a, 4]), b('root'), Buffer.from([0x12, 8]), b('$2a$04$x'), Buffer.from([0x1a, 1]), b('a'), Buffer.from([0x1a, 4]), b('root'), Buffer.from([0x22, 0])]));
    expect(decodeUser(Buffer.concat([enc, Buffer.from([0x28, 0x05])]))).toEqual(u);
    expect(() => decodeUser(Buffer.from([0x0a, 9, 1]))).toThrow(/truncated/);
  });
});
