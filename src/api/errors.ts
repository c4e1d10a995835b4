import type * as grpc from '@grpc/grpc-js';
import { EtcdError, GrpcCode } from '../errors';

/** Maps a thrown value to the gRPC status a client sees: etcd's code and message for ours. */
export function toServiceError(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof EtcdError) return { code: err.code, details: err.message };
  // Not one of etcd's errors: a bug or an engine failure. Say so, and log it for the operator.
  console.error('internal error:', err);
  return { code: GrpcCode.INTERNAL, details: `plinth: internal error: ${(err as Error)?.message ?? String(err)}` };
}

type Callback = (err: Partial<grpc.StatusObject> | null, value?: unknown) => void;

/** Answers a unary call from a handler that may return a value, a promise, or throw. */
export function answer(callback: Callback, run: () => unknown): void {
  let out: unknown;
  try {
    out = run();
  } catch (err) {
    callback(toServiceError(err));
    return;
  }
  if (out instanceof Promise) out.then((v) => callback(null, v), (err) => callback(toServiceError(err)));
  else callback(null, out);
}
