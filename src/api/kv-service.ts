import type * as grpc from '@grpc/grpc-js';
import { Errors } from '../errors';
import type { PutRequest } from '../mvcc/types';
import type { EtcdServer } from '../server/etcd-server';
import * as c from '../wire/convert';
import { answer } from './errors';
import { withAuth } from './auth-context';
import { WIRE_SIZE } from './proto';
import { encodePutResponse, encodeRangeResponse, encodeStoredRangeResponse, encodeTxnResponse } from '../wire/kv-codec';

type Call = grpc.ServerUnaryCall<any, any>;
type Cb = grpc.sendUnaryData<any>;

/**
 * etcdserverpb.KV: decode, call the server, encode. Writes larger than --max-request-bytes are refused.
 * Range, Put and Txn answers are encoded by hand (wire/kv-codec.ts): their serializers pass bytes through.
 */
export const PREENCODED_KV_METHODS = ['Range', 'Put', 'Txn'];
export function kvService(s: EtcdServer): grpc.UntypedServiceImplementation {
  const checkSize = (req: any) => {
    if (req[WIRE_SIZE] > s.cfg.maxRequestBytes) throw Errors.requestTooLarge;
  };
  return {
    Range(call: Call, cb: Cb) {
      answer(s, cb, () => withAuth(s, call, (auth) => {
        const req = c.rangeRequest(call.request);
        const run = () => {
          const stored = s.rangeStored(req, true, auth);
          if (stored) return encodeStoredRangeResponse(s.header(stored.revision), stored.kvs, stored.more, stored.count);
          const out = s.range(req, true, auth);
          const encode = (r: Awaited<typeof out>) => encodeRangeResponse(s.header(r.revision), r.kvs, r.more, r.count);
          return out instanceof Promise ? out.then(encode) : encode(out);
        };
        // A linearizable read waits for its read index first (none needed on a sole voter).
        const barrier = s.readBarrier(req.serializable);
        return barrier ? barrier.then(run) : run();
      }));
    },
    Put(call: Call, cb: Cb) {
      answer(s, cb, () => {
        checkSize(call.request);
        // Decoded by hand into the server's PutRequest already (see grpc-server.ts).
        return withAuth(s, call, (auth) => s.put(call.request as PutRequest, auth).then((r) => encodePutResponse(s.header(r.revision), r.prevKv)));
      });
    },
    DeleteRange(call: Call, cb: Cb) {
      answer(s, cb, () => {
        checkSize(call.request);
        return withAuth(s, call, (auth) => s.deleteRange(c.deleteRangeRequest(call.request), auth)).then((r) => c.deleteRangeResponse(r, c.header(s.header(r.revision))));
      });
    },
    Txn(call: Call, cb: Cb) {
      answer(s, cb, () => {
        checkSize(call.request);
        return withAuth(s, call, (auth) => {
          const out = s.txn(c.txnRequest(call.request), auth);
          const encode = (r: Awaited<typeof out>) => encodeTxnResponse(s.header(r.revision), r);
          return out instanceof Promise ? out.then(encode) : encode(out);
        });
      });
    },
    Compact(call: Call, cb: Cb) {
      answer(s, cb, () =>
        s.compact(Number(call.request.revision), !!call.request.physical).then((rev) => ({ header: c.header(s.header(rev)) })),
      );
    },
  };
}
