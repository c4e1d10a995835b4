import { memoryLogger, type LogRecord } from '../../src/log';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeUser } from '../../src/auth/authpb';
import { comparePassword } from '../../src/auth/password';
import { Errors } from '../../src/errors';
import { defaultConfig, type ServerConfig } from '../../src/server/config';
import { EtcdServer } from '../../src/server/etcd-server';
import { AUTH_KINDS, decodeInternalRequest, encodeInternalRequest, type AuthRequest } from '../../src/server/internal-request';
import { decodeMessage } from '../../src/wire/root';
import { leaderOf, until } from '../helpers/inprocess';
import { freePort } from '../helpers/servers';
import { putReq } from '../helpers/stores';

// The auth store inside the server: auth requests as log entries (etcd's InternalRaftRequest fields, the
// bcrypt hash computed before proposing and carried in the entry), applied on every member of a cluster,
// recovered from a snapshot of the backend, and kept across a restart.

describe('auth requests as log entries', () => {
  it('every auth request round-trips through etcd InternalRaftRequest encoding', () => {
    const reqs: AuthRequest[] = [
      { kind: 'authEnable', req: {} },
      { kind: 'authDisable', req: {} },
      { kind: 'authenticate', req: { name: 'u', simpleToken: 'abcdefghijklmnop' } },
      { kind: 'authUserAdd', req: { name: 'u', options: { noPassword: false }, hashedPassword: '$2a$04$abcdefghijklmnopqrstuu' } },
      { kind: 'authUserAdd', req: { name: 'np', options: { noPassword: true } } },
      { kind: 'authUserDelete', req: { name: 'u' } },
      { kind: 'authUserGet', req: { name: 'u' } },
      { kind: 'authUserChangePassword', req: { name: 'u', hashedPassword: '$2a$04$zz' } },
      { kind: 'authUserGrantRole', req: { user: 'u', role: 'r' } },
      { kind: 'authUserRevokeRole', req: { name: 'u', role: 'r' } },
      { kind: 'authUserList', req: {} },
      { kind: 'authRoleList', req: {} },
      { kind: 'authRoleAdd', req: { name: 'r' } },
      { kind: 'authRoleDelete', req: { role: 'r' } },
      { kind: 'authRoleGet', req: { role: 'r' } },
      { kind: 'authRoleGrantPermission', req: { name: 'r', perm: { permType: 2, key: Buffer.from('a'), rangeEnd: Buffer.from('b') } } },
      { kind: 'authRoleRevokePermission', req: { role: 'r', key: Buffer.from('a'), rangeEnd: Buffer.from('b') } },
    ];
    expect(new Set(reqs.map((r) => r.kind))).toEqual(new Set(AUTH_KINDS));
    for (const a of reqs) {
      const back = decodeInternalRequest(encodeInternalRequest({ auth: a }));
      expect('auth' in back && back.auth.kind).toBe(a.kind);
      const got = (back as { auth: AuthRequest }).auth.req;
      for (const [k, v] of Object.entries(a.req)) expect(got[k], `${a.kind}.${k}`).toEqual(v);
    }
  });

  it("uses etcd's field numbers; the plain password stays out of the entry, the hash is etcd 3.5's hashedPassword", () => {
    const add = encodeInternalRequest({ auth: { kind: 'authUserAdd', req: { name: 'alice', password: 'secret', options: { noPassword: false }, hashedPassword: 'HASH' } } });
    // Field 1100, wire type 2: varint 8802 = e2 44.
    expect(add.subarray(0, 2)).toEqual(Buffer.from([0xe2, 0x44]));
    expect(add.includes(Buffer.from('secret'))).toBe(false);
    // etcd 3.4's decoder reads the request (the hash is a field it skips).
    expect(decodeMessage('etcdserverpb.InternalRaftRequest', add).authUserAdd.name).toBe('alice');
    // AuthUserAddRequest.hashedPassword = 4 (etcd 3.5): tag 0x22.
    expect(add.includes(Buffer.concat([Buffer.from([0x22, 4]), Buffer.from('HASH')]))).toBe(true);
    const cp = encodeInternalRequest({ auth: { kind: 'authUserChangePassword', req: { name: 'alice', password: 'x', hashedPassword: 'H2' } } });
    expect(cp.subarray(0, 2)).toEqual(Buffer.from([0xfa, 0x44])); // 1103
    expect(cp.includes(Buffer.concat([Buffer.from([0x1a, 2]), Buffer.from('H2')]))).toBe(true); // field 3
    const grant = encodeInternalRequest({ auth: { kind: 'authRoleGrantPermission', req: { name: 'r', perm: { permType: 0, key: Buffer.from('k'), rangeEnd: Buffer.alloc(0) } } } });
    expect(grant.subarray(0, 2)).toEqual(Buffer.from([0x9a, 0x4b])); // 1203
  });
});

const dirs: string[] = [];
const servers = new Set<EtcdServer>();
afterEach(async () => {
  for (const s of servers) await s.close().catch(() => {});
  servers.clear();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function clusterCfgs(n: number, over: Partial<ServerConfig> = {}): Promise<ServerConfig[]> {
  const peers: { name: string; port: number }[] = [];
  for (let i = 1; i <= n; i++) peers.push({ name: `m${i}`, port: await freePort() });
  const initial = peers.map((p) => `${p.name}=http://127.0.0.1:${p.port}`).join(',');
  const token = `t-${Math.random().toString(36).slice(2)}`;
  return peers.map((p) => {
    const dir = mkdtempSync(join(tmpdir(), 'plinth-auth-cluster-'));
    dirs.push(dir);
    const url = `http://127.0.0.1:${p.port}`;
    return {
      ...defaultConfig(), name: p.name, dataDir: dir, backend: 'lmdb', unsafeNoFsync: true, bcryptCost: 4,
      initialCluster: initial, initialClusterToken: token, initialAdvertisePeerUrls: [url], listenPeerUrls: [new URL(url)],
      advertiseClientUrls: [`http://127.0.0.1:${p.port + 10000}`], heartbeatIntervalMs: 20, electionTimeoutMs: 200,
      ...over,
    };
  });
}

const logs = new Map<string, LogRecord[]>();
async function start(cfg: ServerConfig): Promise<EtcdServer> {
  const logger = memoryLogger();
  logs.set(cfg.name, logger.records);
  const s = await EtcdServer.open(cfg, { logger });
  servers.add(s);
  return s;
}
async function stop(s: EtcdServer): Promise<void> {
  servers.delete(s);
  await s.close();
}
const storedUser = (s: EtcdServer, name: string) => {
  const v = s.backend.get('authUsers', Buffer.from(name));
  return v && decodeUser(v);
};

describe('the auth store in a cluster', () => {
  it('changes through any member reach every member, with the same bcrypt hash; reads go through the log', async () => {
    const cfgs = await clusterCfgs(3);
    const ms = await Promise.all(cfgs.map(start));
    const leader = await leaderOf(ms);
    const follower = ms.find((m) => m !== leader)!;
    expect(await follower.userAdd({ name: 'alice', password: 'pw', options: { noPassword: false } })).toEqual({});
    expect(await leader.roleAdd({ name: 'r1' })).toEqual({});
    await follower.roleGrantPermission({ name: 'r1', perm: { permType: 2, key: Buffer.from('a'), rangeEnd: Buffer.from('b') } });
    await follower.userGrantRole({ user: 'alice', role: 'r1' });
    await expect(follower.userAdd({ name: 'alice', password: 'x', options: null })).rejects.toBe(Errors.userAlreadyExist);
    await expect(follower.userGrantRole({ user: 'alice', role: 'nosuch' })).rejects.toBe(Errors.roleNotFound);
    await expect(follower.userAdd({ name: '', password: 'x', options: null })).rejects.toBe(Errors.userEmpty);
    expect(await follower.userGet({ name: 'alice' })).toEqual({ roles: ['r1'] });
    expect(await follower.userList()).toEqual({ users: ['alice'] });
    expect(await follower.roleGet({ role: 'r1' })).toEqual({ perm: [{ permType: 2, key: Buffer.from('a'), rangeEnd: Buffer.from('b') }] });
    expect(await until(() => ms.every((m) => m.authStore.revision === leader.authStore.revision), 5000)).toBe(true);
    const hashes = ms.map((m) => storedUser(m, 'alice')!.password.toString('latin1'));
    expect(new Set(hashes).size).toBe(1);
    expect(await comparePassword('pw', hashes[0])).toBe(true);
    await follower.userChangePassword({ name: 'alice', password: 'pw2' });
    expect(await until(() => ms.every((m) => m.authStore.revision === leader.authStore.revision), 5000)).toBe(true);
    const after = ms.map((m) => storedUser(m, 'alice')!.password.toString('latin1'));
    expect(new Set(after).size).toBe(1);
    expect(await comparePassword('pw2', after[0])).toBe(true);
  });

  it('a member caught up from a snapshot has the users and roles of the snapshot', async () => {
    const cfgs = await clusterCfgs(3, { snapshotCount: 50, snapshotCatchUpEntries: 50 });
    const ms = await Promise.all(cfgs.map(start));
    const leader = await leaderOf(ms);
    const fi = ms.findIndex((m) => m !== leader);
    await leader.userAdd({ name: 'before', password: 'pw', options: null });
    await stop(ms[fi]);
    await leader.userAdd({ name: 'during', password: 'pw', options: null });
    await leader.roleAdd({ name: 'rs' });
    await leader.userGrantRole({ user: 'during', role: 'rs' });
    await leader.userDelete({ name: 'before' });
    for (let i = 0; i < 400; i++) await leader.put(putReq(`snap-${i % 40}`, `v${i}`));
    ms[fi] = await start(cfgs[fi]);
    expect(await until(() => ms[fi].currentRevision() === leader.currentRevision(), 15_000)).toBe(true);
    expect(await until(() => logs.get(cfgs[fi].name)!.some((l) => l.msg === 'applied incoming Raft snapshot'), 5000), 'caught up by a snapshot').toBe(true);
    expect(ms[fi].authStore.userList()).toEqual({ users: ['during'] });
    expect(ms[fi].authStore.userGet({ name: 'during' })).toEqual({ roles: ['rs'] });
    expect(ms[fi].authStore.revision).toBe(leader.authStore.revision);
    expect(await ms[fi].userGet({ name: 'during' })).toEqual({ roles: ['rs'] });
  });

  it('a single member keeps users and roles across a restart, and the auth revision', async () => {
    const [cfg] = await clusterCfgs(1);
    let s = await start(cfg);
    await leaderOf([s]);
    await s.userAdd({ name: 'u', password: 'pw', options: { noPassword: false } });
    await s.roleAdd({ name: 'r' });
    await s.userGrantRole({ user: 'u', role: 'r' });
    const rev = s.authStore.revision;
    const hash = storedUser(s, 'u')!.password;
    await stop(s);
    s = await start(cfg);
    await leaderOf([s]);
    expect(s.authStore.revision).toBe(rev);
    expect(await s.userGet({ name: 'u' })).toEqual({ roles: ['r'] });
    expect(storedUser(s, 'u')!.password).toEqual(hash);
  });

  it('a bad --auth-token stops the start with etcd\'s words', async () => {
    const [cfg] = await clusterCfgs(1, { authToken: 'bogus' });
    await expect(EtcdServer.open(cfg)).rejects.toThrow('auth: invalid auth options');
    // The data dir is free again: a good value starts.
    const s = await start({ ...cfg, authToken: 'simple' });
    await leaderOf([s]);
  });
});
