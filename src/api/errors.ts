import type * as grpc from '@grpc/grpc-js';
import { EtcdError, GrpcCode } from '../errors';
import type { Log } from '../server/bootstrap';

/** What answering needs of the server: its logger (the one injected at start). */
export interface Logs {
  readonly log: Log;
}

/** Maps a thrown value to the gRPC status a client sees: etcd's code and message for ours. */
export function toServiceError(s: Logs, err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof EtcdError) return { code: err.code, details: err.message };
  // Not one of etcd's errors: a bug or an engine failure. Say so, and log it for the operator.
  s.log('error', 'internal error', { error: (err as Error)?.message ?? String(err), stack: (err as Error)?.stack });
  return { code: GrpcCode.INTERNAL, details: `plinth: internal error: ${(err as Error)?.message ?? String(err)}` };
}

type Callback = (err: Partial<grpc.StatusObject> | null, value?: unknown) => void;

/** Answers a unary call from a handler that may return a value, a promise, or throw. */
export function answer(s: Logs, callback: Callback, run: () => unknown): void {
  let out: unknown;
  try {
    out = run();
  } catch (err) {
    callback(toServiceError(s, err));
    return;
  }
  if (out instanceof Promise) out.then((v) => callback(null, v), (err) => callback(toServiceError(s, err)));
  else callback(null, out);
}
