import type * as grpc from '@grpc/grpc-js';
import { EtcdError, Errors } from '../errors';
import type { EtcdServer } from '../server/etcd-server';
import * as c from '../wire/convert';
import { answer } from './errors';
import { INVALID, type Invalid } from './proto';
import { withAuth } from './auth-context';

type Call = grpc.ServerUnaryCall<any, any>;
type Cb = grpc.sendUnaryData<any>;

/** etcdserverpb.Lease: grant/revoke go through the log; keep-alives and reads are the leader's own. */
export function leaseService(s: EtcdServer): grpc.UntypedServiceImplementation {
  return {
    LeaseGrant(call: Call, cb: Cb) {
      answer(s, cb, () =>
        s.leaseGrant(Number(call.request.TTL), BigInt(call.request.ID ?? 0)).then((r) => ({
          header: c.header(s.header()),
          ID: r.leaseId.toString(),
          TTL: r.ttl,
        })),
      );
    },

    LeaseRevoke(call: Call, cb: Cb) {
      answer(s, cb, () => withAuth(s, call, (auth) => s.leaseRevoke(BigInt(call.request.ID ?? 0), auth)).then((rev) => ({ header: c.header(s.header(rev)) })));
    },

    LeaseTimeToLive(call: Call, cb: Cb) {
      answer(s, cb, () => {
        const id = BigInt(call.request.ID ?? 0);
        return withAuth(s, call, (auth) => s.leaseTimeToLive(id, !!call.request.keys, auth)).then((t) =>
          // An unknown lease is not an error here: etcd answers TTL -1.
          t ? { header: c.header(s.header()), ID: id.toString(), TTL: t.ttl, grantedTTL: t.grantedTtl, keys: t.keys }
            : { header: c.header(s.header()), ID: id.toString(), TTL: -1 },
        );
      });
    },

    LeaseLeases(_call: Call, cb: Cb) {
      answer(s, cb, () => ({
        header: c.header(s.header()),
        leases: s.leaseIds().map((id) => ({ ID: id.toString() })),
      }));
    },

    LeaseKeepAlive(call: grpc.ServerDuplexStream<any, any>) {
      // Renewals a follower forwards to the leader are answered in the order they were asked.
      let forwarded: Promise<void> = Promise.resolve();
      call.on('data', (req: any) => {
        const invalid = req?.[INVALID] as Invalid | undefined;
        if (invalid) return call.emit('error', invalid);
        const id = BigInt(req.ID ?? 0);
        // The header is taken before the renewal, as etcd does.
        const header = c.header(s.header());
        const fail = (err: unknown) => {
          // An unknown lease is answered with TTL 0; anything else ends the stream, as etcd's.
          if (err === Errors.leaseNotFound) call.write({ header, ID: id.toString(), TTL: 0 });
          else call.emit('error', err instanceof EtcdError ? { code: err.code, details: err.message } : err);
        };
        let ttl: number | Promise<number>;
        try {
          ttl = s.leaseRenew(id);
        } catch (err) {
          return fail(err);
        }
        // A follower forwards the renewal to the leader; answers keep the requests' order per stream.
        if (typeof ttl === 'number') call.write({ header, ID: id.toString(), TTL: ttl });
        else {
          const answer = ttl.then((t) => () => void call.write({ header, ID: id.toString(), TTL: t }), (err) => () => fail(err));
          forwarded = forwarded.then(() => answer).then((send) => send());
        }
      });
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  };
}
