import type * as grpc from '@grpc/grpc-js';
import { EtcdError, Errors } from '../errors';
import type { EtcdServer } from '../server/etcd-server';
import * as c from '../wire/convert';
import { answer } from './errors';
import { INVALID, type Invalid } from './proto';

type Call = grpc.ServerUnaryCall<any, any>;
type Cb = grpc.sendUnaryData<any>;

/** etcdserverpb.Lease: grant/revoke go through the log; keep-alives and reads are the leader's own. */
export function leaseService(s: EtcdServer): grpc.UntypedServiceImplementation {
  return {
    LeaseGrant(call: Call, cb: Cb) {
      answer(cb, () =>
        s.leaseGrant(Number(call.request.TTL), BigInt(call.request.ID ?? 0)).then((r) => ({
          header: c.header(s.header()),
          ID: r.leaseId.toString(),
          TTL: r.ttl,
        })),
      );
    },

    LeaseRevoke(call: Call, cb: Cb) {
      answer(cb, () => s.leaseRevoke(BigInt(call.request.ID ?? 0)).then((rev) => ({ header: c.header(s.header(rev)) })));
    },

    LeaseTimeToLive(call: Call, cb: Cb) {
      answer(cb, () => {
        const id = BigInt(call.request.ID ?? 0);
        const lease = s.lessor.lookup(id);
        // An unknown lease is not an error here: etcd answers TTL -1.
        if (!lease) return { header: c.header(s.header()), ID: id.toString(), TTL: -1 };
        return {
          header: c.header(s.header()),
          ID: id.toString(),
          TTL: s.lessor.remainingSeconds(lease),
          grantedTTL: lease.ttl,
          keys: call.request.keys ? [...lease.keys].sort().map((k) => Buffer.from(k, 'latin1')) : [],
        };
      });
    },

    LeaseLeases(_call: Call, cb: Cb) {
      answer(cb, () => ({
        header: c.header(s.header()),
        leases: [...s.lessor.leases.keys()].map((id) => ({ ID: id.toString() })),
      }));
    },

    LeaseKeepAlive(call: grpc.ServerDuplexStream<any, any>) {
      call.on('data', (req: any) => {
        const invalid = req?.[INVALID] as Invalid | undefined;
        if (invalid) return call.emit('error', invalid);
        const id = BigInt(req.ID ?? 0);
        // The header is taken before the renewal, as etcd does.
        const header = c.header(s.header());
        let ttl = 0;
        try {
          ttl = s.leaseRenew(id);
        } catch (err) {
          if (err !== Errors.leaseNotFound) {
            call.emit('error', err instanceof EtcdError ? { code: err.code, details: err.message } : err);
            return;
          }
        }
        call.write({ header, ID: id.toString(), TTL: ttl });
      });
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  };
}
