import { Errors } from '../errors';
import { isReadOnly, type KV } from '../mvcc/kv';
import type { DeleteRangeResponse, PutResponse, TxnResponse } from '../mvcc/types';
import { AlarmType, type Alarm, type AlarmStore } from './alarms';
import { ADMIN_AUTH_KINDS, type AuthRequest, type InternalRequest } from './internal-request';
import type { Lessor } from '../lease/lessor';
import type { AuthInfo, AuthStore } from '../auth';
import { WriteAuthChecks } from './auth-checks';
import type { Log } from '../log';

export const AlarmAction = { GET: 0, ACTIVATE: 1, DEACTIVATE: 2 } as const;

export type ApplyResult =
  | PutResponse
  | DeleteRangeResponse
  | TxnResponse
  | { revision: number; compacted: Promise<void> }
  | { alarms: Alarm[] }
  | { leaseId: bigint; ttl: number }
  | { revision: number }
  /** An auth request's response fields (no header: the API layer adds it). */
  | { auth: Record<string, unknown> }
  /** Authenticate: the token, once signed (its state changes happened in the apply). */
  | { authenticated: Promise<{ token: string }> };

/**
 * Applies committed requests to the state machine (mvcc, alarms), in log order. Deterministic: the
 * same entries on the same state give the same state, which is what makes WAL replay correct.
 * Errors it throws are the request's answer (etcd's apply errors); the entry stays applied.
 */
export class Applier {
  private readonly checks: WriteAuthChecks;

  constructor(
    private readonly kv: KV,
    private readonly alarms: AlarmStore,
    private readonly lessor: Lessor,
    private readonly authStore: AuthStore,
    private readonly log: Log = () => {},
  ) {
    this.checks = new WriteAuthChecks(authStore, lessor);
  }

  /** Member attributes are the server's (membership), not the state machine's. */
  /**
   * index: the entry's log index (a simple token ends with it). auth: while auth is on, the user and auth
   * revision the entry's header carries (etcd's authApplierV3 checks them before anything else, quota
   * included); undefined while auth is off.
   */
  apply(r: Exclude<InternalRequest, { memberAttributes: unknown }>, index = 0, auth?: AuthInfo): ApplyResult {
    if (auth) {
      const refused = this.checkAuth(r, auth);
      if (refused) throw refused;
    }
    if ('put' in r) {
      if (this.alarms.has(AlarmType.NOSPACE)) throw Errors.noSpace;
      return this.kv.put(r.put);
    }
    if ('deleteRange' in r) return this.kv.deleteRange(r.deleteRange);
    if ('txn' in r) {
      if (this.alarms.has(AlarmType.NOSPACE) && !isReadOnly(r.txn)) throw Errors.noSpace;
      return this.kv.txn(r.txn);
    }
    if ('compaction' in r) {
      const { revision, done } = this.kv.compact(r.compaction.revision);
      return { revision, compacted: done };
    }
    if ('leaseGrant' in r) {
      if (this.alarms.has(AlarmType.NOSPACE)) throw Errors.noSpace;
      const lease = this.lessor.grant(r.leaseGrant.id, r.leaseGrant.ttl);
      return { leaseId: lease.id, ttl: lease.ttl };
    }
    if ('leaseRevoke' in r) {
      this.lessor.revoke(r.leaseRevoke.id, this.kv.store);
      return { revision: this.kv.rev };
    }
    if ('auth' in r) {
      if (r.auth.kind === 'authenticate') {
        // etcd's applierV3backend.Authenticate: the password was checked before proposing.
        const q = r.auth.req;
        const token = this.authStore.applyAuthenticate(String(q.name ?? ''), { index, simpleTokenPrefix: String(q.simpleToken ?? '') });
        token.catch(() => {}); // on members that did not propose it nobody awaits it
        return { authenticated: token };
      }
      return { auth: this.applyAuth(r.auth) };
    }
    if ('leaseCheckpoint' in r) {
      for (const c of r.leaseCheckpoint.checkpoints) this.lessor.checkpoint(c.id, c.remainingTtl);
      return { revision: this.kv.rev };
    }
    const a = r.alarm;
    switch (a.action) {
      case AlarmAction.ACTIVATE: {
        if (a.alarm === AlarmType.NONE) return { alarms: [] };
        // etcd logs the first of its kind only (applierV3backend.Alarm).
        const first = !this.alarms.has(a.alarm);
        const m = this.alarms.activate(a.memberId, a.alarm);
        if (first) this.log('warn', 'alarm raised', { alarm: alarmName(a.alarm), from: a.memberId.toString(16) });
        return { alarms: [m] };
      }
      case AlarmAction.DEACTIVATE: {
        const removed = this.alarms.deactivate(a.memberId, a.alarm);
        if (removed && !this.alarms.has(a.alarm)) this.log('warn', 'alarm disarmed', { alarm: alarmName(a.alarm), from: a.memberId.toString(16) });
        return { alarms: removed ? [removed] : [] };
      }
      default:
        return { alarms: this.alarms.list().filter((x) => a.alarm === AlarmType.NONE || x.alarm === a.alarm) };
    }
  }

  /** etcd's authApplierV3: the permission a request needs, checked as the entry is applied. */
  private checkAuth(r: Exclude<InternalRequest, { memberAttributes: unknown }>, info: AuthInfo) {
    if ('put' in r) return this.checks.put(info, r.put);
    if ('deleteRange' in r) return this.checks.deleteRange(info, r.deleteRange);
    if ('txn' in r) return this.checks.txn(info, r.txn);
    if ('leaseRevoke' in r) return this.checks.leasePuts(info, r.leaseRevoke.id);
    if (!('auth' in r)) return undefined;
    const as = this.authStore;
    const kind = r.auth.kind;
    if (ADMIN_AUTH_KINDS.has(kind)) return as.isAdminPermitted(info);
    // A user may read itself, and the roles it has.
    if (kind === 'authUserGet' && r.auth.req.name !== info.username) return as.isAdminPermitted(info);
    if (kind === 'authRoleGet' && !as.hasRole(info.username, String(r.auth.req.role ?? ''))) return as.isAdminPermitted(info);
    return undefined;
  }

  /** etcd's applierV3backend Auth* calls: the auth store's, in log order (synchronous, deterministic). */
  private applyAuth(a: AuthRequest): Record<string, unknown> {
    const as = this.authStore;
    const r = a.req as any;
    switch (a.kind) {
      case 'authEnable': return as.authEnable();
      case 'authDisable': return as.authDisable();
      case 'authUserAdd': return as.userAdd(r);
      case 'authUserDelete': return as.userDelete(r);
      case 'authUserGet': return as.userGet(r);
      case 'authUserChangePassword': return as.userChangePassword(r);
      case 'authUserGrantRole': return as.userGrantRole(r);
      case 'authUserRevokeRole': return as.userRevokeRole(r);
      case 'authUserList': return as.userList();
      case 'authRoleList': return as.roleList();
      case 'authRoleAdd': return as.roleAdd(r);
      case 'authRoleDelete': return as.roleDelete(r);
      case 'authRoleGet': return as.roleGet(r);
      case 'authRoleGrantPermission': return as.roleGrantPermission(r);
      case 'authRoleRevokePermission': return as.roleRevokePermission(r);
      case 'authenticate': throw new Error('authenticate is applied by apply()');
    }
  }
}

/** etcdserverpb.AlarmType's names, as etcd's log lines write them. */
function alarmName(alarm: number): string {
  return Object.entries(AlarmType).find(([, v]) => v === alarm)?.[0] ?? String(alarm);
}
