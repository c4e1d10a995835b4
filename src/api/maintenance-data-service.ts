import type * as grpc from '@grpc/grpc-js';
import type { EtcdServer } from '../server/etcd-server';
import * as c from '../wire/convert';
import { answer, toServiceError } from './errors';
import { asMaintenanceError } from '../errors';
import { withAuth } from './auth-context';

/** etcd sends snapshots in messages of this size (maintenance.go snapshotSendBufferSize). */
const SEND_BYTES = 32 * 1024;

/** Maintenance's Defragment and Snapshot: the calls that move the whole backend. */
export function maintenanceDataService(s: EtcdServer): grpc.UntypedServiceImplementation {
  return {
    Defragment(call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) {
      // An empty DefragmentResponse, no header, as etcd's maintenance server answers.
      answer(s, cb, () => Promise.resolve().then(() => withAuth(s, call, (auth) => s.defragment(auth))).catch((err) => { throw asMaintenanceError(err); }).then(() => ({})));
    },

    Snapshot(call: grpc.ServerWritableStream<any, any>) {
      void (async () => {
        try {
          const snap = await withAuth(s, call, (auth) => s.snapshot(auth));
          let sent = 0;
          const header = c.header(s.header());
          try {
            for await (const chunk of snap.chunks()) {
              for (let off = 0; off < chunk.length && !call.cancelled; off += SEND_BYTES) {
                const blob = chunk.subarray(off, off + SEND_BYTES);
                sent += blob.length;
                // Respect the client's pace: wait for 'drain' when the buffer is full (or for the client to go).
                if (!call.write({ header, remainingBytes: snap.size - sent, blob })) {
                  await new Promise<void>((r) => {
                    const done = () => {
                      call.off('drain', done);
                      call.off('cancelled', done);
                      r();
                    };
                    call.once('drain', done);
                    call.once('cancelled', done);
                  });
                }
              }
              if (call.cancelled) break;
            }
            // The sha256 of the whole snapshot, last, as etcd sends it.
            if (!call.cancelled) call.write({ header, remainingBytes: 0, blob: snap.sha256() });
          } finally {
            await snap.close();
          }
          call.end();
        } catch (err) {
          call.emit('error', toServiceError(s, asMaintenanceError(err)));
        }
      })();
    },
  };
}
