import type * as grpc from '@grpc/grpc-js';
import { asMaintenanceError, Errors } from '../errors';
import { AlarmType } from '../server/alarms';
import { AlarmAction } from '../server/applier';
import { ETCD_COMPAT_VERSION } from '../server/config';
import type { EtcdServer } from '../server/etcd-server';
import * as c from '../wire/convert';
import { answer } from './errors';
import { withAuth } from './auth-context';

type Call = grpc.ServerUnaryCall<any, any>;
type Cb = grpc.sendUnaryData<any>;

/**
 * etcdserverpb.Maintenance: Status, Alarm, Hash, HashKV and MoveLeader (Defragment and Snapshot are in
 * maintenance-data-service.ts).
 */
export function maintenanceService(s: EtcdServer): grpc.UntypedServiceImplementation {
  return {
    Status(_call: Call, cb: Cb) {
      answer(s, cb, () => s.status().then((st) => ({
        header: c.header(s.header()),
        version: ETCD_COMPAT_VERSION,
        dbSize: st.dbSize,
        dbSizeInUse: st.dbSizeInUse,
        leader: st.leader.toString(),
        raftIndex: st.raftIndex,
        raftTerm: st.raftTerm,
        raftAppliedIndex: st.raftAppliedIndex,
        errors: st.alarms.map((a) => `memberID:${a.memberId} alarm:${alarmName(a.alarm)} `),
        isLearner: st.isLearner,
      })));
    },
    Alarm(call: Call, cb: Cb) {
      answer(s, cb, () => {
        const req = call.request;
        const action = req.action | 0;
        const alarm = req.alarm | 0;
        if (action === AlarmAction.ACTIVATE && alarm === AlarmType.NONE) throw Errors.notCapable;
        // No header, as etcd's: its applier builds the AlarmResponse bare and the maintenance server passes
        // it on (`etcdctl alarm list -w json` prints {} there).
        return s.alarm({ action, memberId: BigInt(req.memberID ?? '0'), alarm }).then((alarms) => ({
          alarms: alarms.map((a) => ({ memberID: a.memberId.toString(), alarm: a.alarm })),
        }));
      });
    },
    Hash(call: Call, cb: Cb) {
      // As etcd: the revision is read once the hash is done. Hash, HashKV, Defragment and Snapshot need root.
      answer(s, cb, () => withAuth(s, call, (auth) => s.hash(auth)).catch(rethrowForMaintenance).then((h) => ({ header: c.header(s.header(h.revision)), hash: h.hash })));
    },
    MoveLeader(call: Call, cb: Cb) {
      // etcd's answer is an empty MoveLeaderResponse (no header), once the transferee leads.
      answer(s, cb, () => withAuth(s, call, (auth) => s.moveLeader(BigInt.asUintN(64, BigInt(call.request.targetID ?? 0)), auth)).then(() => ({})));
    },
    HashKV(call: Call, cb: Cb) {
      answer(s, cb, () =>
        withAuth(s, call, (auth) => s.hashKV(Number(call.request.revision ?? 0), auth)).catch(rethrowForMaintenance).then((r) => ({ header: c.header(s.header(r.revision)), hash: r.hash, compactRevision: r.compactRevision })),
      );
    },
  };
}

/** etcd's maintenance server answers its auth checks' errors unconverted (errors.ts). */
function rethrowForMaintenance(err: unknown): never {
  throw asMaintenanceError(err);
}

function alarmName(a: number): string {
  return a === AlarmType.NOSPACE ? 'NOSPACE' : a === AlarmType.CORRUPT ? 'CORRUPT' : 'NONE';
}
