import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_DIR, PROTO_FILES } from '../wire/root';
import { checkWire, messageRules, requestTypeName } from '../wire/wire-check';

// gRPC service definitions for etcd's services, from proto/ (see wire/root.ts).

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String, // int64 ids (lease, member, cluster) exceed 2^53
  enums: Number,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

let cached: grpc.GrpcObject | undefined;

export function loadEtcdProtos(): grpc.GrpcObject {
  cached ??= grpc.loadPackageDefinition(
    protoLoader.loadSync(PROTO_FILES, LOADER_OPTIONS),
  );
  return cached;
}

/** Size in bytes of a decoded request as it came off the wire (for etcd's request-size limit). */
export const WIRE_SIZE = Symbol('wireSize');
/** Set instead of fields when a request could not be accepted: the status to answer with. */
export const INVALID = Symbol('invalid');

export interface Invalid {
  code: number;
  details: string;
}

/**
 * A service definition from the protos whose request decoders check size and wire format as etcd's
 * gRPC server does, with its words, and remember each message's wire size. A refused request decodes
 * to { [INVALID]: status }, which the handler answers with (see guardUnary).
 */
export function serviceDefinition(
  pkg: string,
  service: string,
  maxRecvBytes: number,
  /** Hand-written decoders by method, used instead of protobufjs once the checks passed. */
  decoders: Record<string, (buf: Buffer) => any> = {},
): grpc.ServiceDefinition {
  const root = loadEtcdProtos() as Record<string, any>;
  const ctor = root[pkg][service] as { service: grpc.ServiceDefinition };
  const def: Record<string, grpc.MethodDefinition<any, any>> = {};
  for (const [name, m] of Object.entries(ctor.service)) {
    const decode = decoders[name] ?? m.requestDeserialize;
    const rules = messageRules(requestTypeName(`${pkg}.${service}`, name));
    def[name] = {
      ...m,
      requestDeserialize: (buf: Buffer) => {
        if (buf.length > maxRecvBytes) {
          return { [INVALID]: { code: grpc.status.RESOURCE_EXHAUSTED, details: `grpc: received message larger than max (${buf.length} vs. ${maxRecvBytes})` } };
        }
        const bad = checkWire(rules, buf);
        if (bad) return { [INVALID]: { code: grpc.status.INTERNAL, details: `grpc: error unmarshalling request: ${bad}` } };
        const msg = decode(buf);
        msg[WIRE_SIZE] = buf.length;
        return msg;
      },
    };
  }
  return def as grpc.ServiceDefinition;
}

/** Wraps handlers so that a request refused by the decoder is answered with its status. */
export function guard(impl: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(impl)) {
    out[name] = ((call: any, cb: any) => {
      const invalid = call.request?.[INVALID] as Invalid | undefined;
      if (!invalid) (handler as Function)(call, cb);
      else if (cb) cb(invalid); // unary
      else call.emit('error', invalid); // server streaming
    }) as any;
  }
  return out;
}
