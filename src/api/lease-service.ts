import type * as grpc from '@grpc/grpc-js';
import { EtcdError, Errors } from '../errors';
import type { EtcdServer } from '../server/etcd-server';
import * as c from '../wire/convert';
import { answer } from './errors';
import { INVALID, type Invalid } from './proto';
import { withAuth } from './auth-context';

type Call = grpc.ServerUnaryCall<any, any>;

/** Forwarded keep-alive renewals one stream may have under way (see LeaseKeepAlive). */
export const MAX_FORWARDED_RENEWALS = 64;
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
      // Renewals a follower forwards to the leader are answered in the order they were asked. etcd renews
      // one at a time per stream; here up to MAX_FORWARDED_RENEWALS are under way at once, and past them the
      // stream's requests are held back by flow control (one stream window more can arrive) until half are
      // answered: a client that sends faster than the leader answers cannot grow the chain without bound.
      let forwarded: Promise<void> = Promise.resolve();
      let outstanding = 0;
      let held = false;
      const hold = (h: boolean) => {
        held = h;
        (call as unknown as { holdRequests?: (hold: boolean) => void }).holdRequests?.(h);
      };
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
          if (++outstanding >= MAX_FORWARDED_RENEWALS && !held) hold(true);
          const answer = ttl.then((t) => () => void call.write({ header, ID: id.toString(), TTL: t }), (err) => () => fail(err));
          forwarded = forwarded.then(() => answer).then((send) => {
            send();
            if (--outstanding <= MAX_FORWARDED_RENEWALS / 2 && held) hold(false);
          });
        }
      });
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  };
}
