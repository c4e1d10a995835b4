import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Errors } from '../../src/errors';
import { defaultConfig } from '../../src/server/config';
import { EtcdServer, type AuthContext } from '../../src/server/etcd-server';
import type { TxnRequest } from '../../src/mvcc/types';
import { leaderOf } from '../helpers/inprocess';
import { freePort } from '../helpers/servers';
import { b, prefixEnd, putReq, rangeReq } from '../helpers/stores';

// The server's permission checks (issue #15 step 2, server side), with auth enabled through the server:
// etcd 3.4's rules (apply_auth.go, v3_server.go, store.go) for KV, txn, lease, watch, admin and auth
// management calls, before proposing and again as entries are applied.

const dirs: string[] = [];
let server: EtcdServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const RW = 2;
const READ = 0;

async function setUp() {
  const dir = mkdtempSync(join(tmpdir(), 'plinth-authz-'));
  dirs.push(dir);
  const port = await freePort();
  const s = (server = await EtcdServer.open({ ...defaultConfig(), dataDir: dir, backend: 'memory', bcryptCost: 4, initialAdvertisePeerUrls: [`http://127.0.0.1:${port}`] }));
  await leaderOf([s]);
  await s.userAdd({ name: 'root', password: 'rootpw', options: null });
  await s.userGrantRole({ user: 'root', role: 'root' });
  await s.userAdd({ name: 'alice', password: 'apw', options: null });
  await s.roleAdd({ name: 'ra' });
  await s.roleGrantPermission({ name: 'ra', perm: { permType: RW, key: b('a/'), rangeEnd: b(prefixEnd('a/')) } });
  await s.roleGrantPermission({ name: 'ra', perm: { permType: READ, key: b('r/'), rangeEnd: b(prefixEnd('r/')) } });
  await s.userGrantRole({ user: 'alice', role: 'ra' });
  await s.put(putReq('r/1', 'x'));
  await s.put(putReq('secret', 'y'));
  return s;
}

async function login(s: EtcdServer, name: string, pw: string): Promise<AuthContext> {
  const { token } = await s.authenticate(name, pw);
  return (await s.authContext(token))!;
}

describe('permission checks with auth enabled', () => {
  it('AuthEnable needs a root user with the root role; Authenticate checks the password', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plinth-authz-'));
    dirs.push(dir);
    const s = (server = await EtcdServer.open({ ...defaultConfig(), dataDir: dir, backend: 'memory', bcryptCost: 4 }));
    await leaderOf([s]);
    expect(s.authContext(undefined)).toBeUndefined(); // auth off: nothing to check
    await expect(s.authContext('x')).rejects.toBe(Errors.invalidAuthToken); // a token is still verified, as etcd
    await expect(s.authenticate('root', 'x')).rejects.toBe(Errors.authNotEnabled);
    await expect(s.authEnable()).rejects.toBe(Errors.rootUserNotExist);
    await s.userAdd({ name: 'root', password: 'pw', options: null });
    await expect(s.authEnable()).rejects.toBe(Errors.rootRoleNotExist);
    await s.userGrantRole({ user: 'root', role: 'root' });
    await s.authEnable();
    expect(s.authEnabled).toBe(true);
    await expect(s.authenticate('root', 'bad')).rejects.toBe(Errors.authFailed);
    await expect(s.authenticate('nobody', 'pw')).rejects.toBe(Errors.authFailed);
    const { token } = await s.authenticate('root', 'pw');
    expect(token).toMatch(/^[a-zA-Z]{16}\.\d+$/);
    await expect(s.authContext('forged.1')).rejects.toBe(Errors.invalidAuthToken);
    expect(await s.authContext(undefined)).toEqual({ info: undefined });
  });

  it('KV: range, put, delete and txn over every key range they touch', async () => {
    const s = await setUp();
    await s.authEnable();
    const root = await login(s, 'root', 'rootpw');
    const alice = await login(s, 'alice', 'apw');
    const none: AuthContext = { info: undefined };
    // no token
    expect(() => s.range(rangeReq('a/1'), false, none)).toThrow(Errors.userEmpty);
    expect(() => s.put(putReq('a/1', 'v'), none)).toThrow(Errors.userEmpty);
    // her prefixes
    await s.put(putReq('a/1', 'v'), alice);
    expect((await s.range(rangeReq('a/', { end: prefixEnd('a/') }), false, alice)).kvs.length).toBe(1);
    expect((await s.range(rangeReq('r/1'), false, alice)).kvs.length).toBe(1);
    // outside them, or only readable
    expect(() => s.range(rangeReq('secret'), false, alice)).toThrow(Errors.permissionDenied);
    expect(() => s.range(rangeReq('a/', { end: '\0' }), false, alice)).toThrow(Errors.permissionDenied);
    expect(() => s.rangeStored(rangeReq('secret', { serializable: true }), false, alice)).toThrow(Errors.permissionDenied);
    expect(() => s.put(putReq('r/1', 'v'), alice)).toThrow(Errors.permissionDenied);
    expect(() => s.put(putReq('b', 'v'), alice)).toThrow(Errors.permissionDenied);
    expect(() => s.deleteRange({ key: b('a/'), rangeEnd: b('b'), prevKv: false }, alice)).toThrow(Errors.permissionDenied);
    await s.deleteRange({ key: b('a/1'), rangeEnd: Buffer.alloc(0), prevKv: true }, alice);
    // a txn that touches one forbidden key does nothing
    const rev = s.currentRevision();
    const txn = (over: Partial<TxnRequest>): TxnRequest => ({ compare: [], success: [], failure: [], ...over });
    const cmp = (key: string) => ({ result: 0, target: 0, key: b(key), rangeEnd: Buffer.alloc(0), value: Buffer.alloc(0), number: 0n });
    expect(() => s.txn(txn({ success: [{ put: putReq('a/2', 'v') }, { put: putReq('secret', 'z') }] }), alice)).toThrow(Errors.permissionDenied);
    expect(() => s.txn(txn({ compare: [cmp('secret')], success: [{ put: putReq('a/2', 'v') }] }), alice)).toThrow(Errors.permissionDenied);
    expect(() => s.txn(txn({ failure: [{ range: rangeReq('secret') }] }), alice)).toThrow(Errors.permissionDenied);
    expect(() => s.txn(txn({ success: [{ txn: txn({ success: [{ deleteRange: { key: b('secret'), rangeEnd: Buffer.alloc(0), prevKv: false } }] }) }] }), alice)).toThrow(Errors.permissionDenied);
    expect(s.currentRevision()).toBe(rev);
    expect((await s.range(rangeReq('secret'), false, root)).kvs[0].value.toString()).toBe('y');
    await s.txn(txn({ compare: [cmp('r/1')], success: [{ put: putReq('a/2', 'v') }], failure: [{ range: rangeReq('r/1') }] }), alice);
    // the root role may do anything
    await s.put(putReq('secret', 'z'), root);
  });

  it('a token minted before an auth change is refused ("revision of auth store is old"); deleting a user ends its tokens', async () => {
    const s = await setUp();
    await s.authEnable();
    const root = await login(s, 'root', 'rootpw');
    const alice = await login(s, 'alice', 'apw');
    await s.roleAdd({ name: 'other' }, root);
    expect(() => s.range(rangeReq('a/1'), false, alice)).toThrow(Errors.authOldRevision);
    const fresh = await login(s, 'alice', 'apw');
    const { token } = await s.authenticate('alice', 'apw');
    expect(() => s.range(rangeReq('a/1'), false, fresh)).not.toThrow();
    await s.userDelete({ name: 'alice' }, await login(s, 'root', 'rootpw'));
    await expect(s.authContext(token)).rejects.toBe(Errors.invalidAuthToken);
  });

  it('writes are checked again as they are applied: a permission revoked before the entry applies refuses it', async () => {
    const s = await setUp();
    await s.authEnable();
    const root = await login(s, 'root', 'rootpw');
    const alice = await login(s, 'alice', 'apw');
    const rev = s.currentRevision();
    // Both proposed in one tick: alice's put passes the check before proposing, then applies after the revoke.
    const revoke = s.roleRevokePermission({ role: 'ra', key: b('a/'), rangeEnd: b(prefixEnd('a/')) }, root);
    const put = s.put(putReq('a/late', 'v'), alice);
    await revoke;
    await expect(put).rejects.toBe(Errors.authOldRevision);
    // Her next token is current, and the permission is gone.
    const again = await login(s, 'alice', 'apw');
    expect(() => s.put(putReq('a/late', 'v'), again)).toThrow(Errors.permissionDenied);
    expect(s.currentRevision()).toBe(rev);
    const root2 = await login(s, 'root', 'rootpw');
    expect((await s.range(rangeReq('a/late'), false, root2)).kvs).toHaveLength(0);
    // Management calls too: alice's root role granted and revoked before her request applies.
    await s.userGrantRole({ user: 'alice', role: 'root' }, root2);
    const root3 = await login(s, 'root', 'rootpw');
    const aliceRoot = await login(s, 'alice', 'apw');
    const revokeRoot = s.userRevokeRole({ name: 'alice', role: 'root' }, root3);
    const roleAdd = s.roleAdd({ name: 'late' }, aliceRoot);
    await revokeRoot;
    await expect(roleAdd).rejects.toBe(Errors.permissionDenied); // etcd's IsAdminPermitted looks at the roles, not the revision
    expect((await s.roleList(await login(s, 'root', 'rootpw'))).roles).not.toContain('late');
  });

  it('an expired lease is revoked while auth is on (as root, etcd\'s WithRoot)', async () => {
    const s = await setUp();
    await s.authEnable();
    const root = await login(s, 'root', 'rootpw');
    const { leaseId } = await s.leaseGrant(1, 0n);
    await s.put(putReq('secret-l', 'v', { lease: leaseId }), root);
    const deadline = Date.now() + 6000;
    while (s.leaseIds().includes(leaseId) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(s.leaseIds()).not.toContain(leaseId);
    expect((await s.range(rangeReq('secret-l'), false, await login(s, 'root', 'rootpw'))).kvs).toHaveLength(0);
  });

  it('leases: revoke needs write and time-to-live read permission on every attached key', async () => {
    const s = await setUp();
    const { leaseId } = await s.leaseGrant(60, 0n);
    await s.put(putReq('a/l', 'v', { lease: leaseId }));
    await s.put(putReq('r/l', 'v', { lease: leaseId }));
    await s.authEnable();
    const root = await login(s, 'root', 'rootpw');
    const alice = await login(s, 'alice', 'apw');
    await expect(s.leaseRevoke(leaseId, alice)).rejects.toBe(Errors.permissionDenied);
    expect(await s.leaseTimeToLive(leaseId, true, alice)).toBeDefined();
    await s.put(putReq('secret', 'w', { lease: leaseId }), root);
    expect(() => s.leaseTimeToLive(leaseId, true, alice)).toThrow(Errors.permissionDenied);
    await s.leaseRevoke(leaseId, root);
  });

  it('watch: read permission over the watched range', async () => {
    const s = await setUp();
    await s.authEnable();
    const root = await login(s, 'root', 'rootpw');
    const alice = await login(s, 'alice', 'apw');
    expect(s.watchPermission(alice, b('a/'), b(prefixEnd('a/')))).toBeUndefined();
    expect(s.watchPermission(alice, b('r/1'), undefined)).toBeUndefined();
    expect(s.watchPermission(alice, b('a/'), Buffer.from([0]))).toBe(Errors.permissionDenied);
    expect(s.watchPermission(alice, b('secret'), undefined)).toBe(Errors.permissionDenied);
    expect(s.watchPermission({ info: undefined }, b('a/1'), undefined)).toBe(Errors.userEmpty);
    expect(s.watchPermission(undefined, b('secret'), undefined)).toBeUndefined(); // the server's own
  });

  it('maintenance, member and auth management calls need the root role; a user reads itself and its roles', async () => {
    const s = await setUp();
    await s.authEnable();
    const root = await login(s, 'root', 'rootpw');
    const alice = await login(s, 'alice', 'apw');
    expect(() => s.defragment(alice)).toThrow(Errors.permissionDenied);
    await expect(s.hash(alice)).rejects.toBe(Errors.permissionDenied);
    await expect(s.hashKV(0, alice)).rejects.toBe(Errors.permissionDenied);
    await expect(s.snapshot(alice)).rejects.toBe(Errors.permissionDenied);
    expect(() => s.moveLeader(1n, alice)).toThrow(Errors.permissionDenied);
    expect(() => s.addMember(['http://127.0.0.1:1'], false, alice)).toThrow(Errors.permissionDenied);
    expect(() => s.removeMember(1n, alice)).toThrow(Errors.permissionDenied);
    expect(() => s.removeMember(1n, { info: undefined })).toThrow(Errors.userEmpty);
    await s.hashKV(0, root);
    await expect(s.userAdd({ name: 'x', password: 'p', options: null }, alice)).rejects.toBe(Errors.permissionDenied);
    await expect(s.userList(alice)).rejects.toBe(Errors.permissionDenied);
    await expect(s.roleList(alice)).rejects.toBe(Errors.permissionDenied);
    await expect(s.authDisable(alice)).rejects.toBe(Errors.permissionDenied);
    expect(await s.userGet({ name: 'alice' }, alice)).toEqual({ roles: ['ra'] });
    await expect(s.userGet({ name: 'root' }, alice)).rejects.toBe(Errors.permissionDenied);
    expect((await s.roleGet({ role: 'ra' }, alice)).perm).toHaveLength(2);
    await expect(s.roleGet({ role: 'root' }, alice)).rejects.toBe(Errors.permissionDenied);
    // root stays root while auth is on
    await expect(s.userDelete({ name: 'root' }, root)).rejects.toBe(Errors.invalidAuthMgmt);
    await expect(s.userRevokeRole({ name: 'root', role: 'root' }, root)).rejects.toBe(Errors.invalidAuthMgmt);
    await s.authDisable(root);
    expect(s.authEnabled).toBe(false);
    await expect(s.authContext('anything')).rejects.toBe(Errors.invalidAuthToken); // its tokens are gone
    expect(s.authContext(undefined)).toBeUndefined();
  });
});
