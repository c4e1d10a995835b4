// A raw gRPC client for etcd's Watch service (the bidi stream /etcdserverpb.Watch/Watch), built from
// proto/ with snake_case names as on the wire, for the watch tests (test/api/watch-*.test.ts):
//  - WatchStream: one stream; send create / cancel / progress requests, and every response is kept in
//    arrival order; waits are always bounded (waitFor, waitQuiet);
//  - describeResponse: one line of text per WatchResponse, ids and raft term replaced by placeholders,
//    so that the response sequences of two servers can be compared (and read in a diff).
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Bytes, Int64 } from './grpc-client';

const PROTO_DIR = resolve(__dirname, '..', '..', 'proto');

const watchDefinition = protoLoader.loadSync(join('etcd', 'etcdserver', 'etcdserverpb', 'rpc.proto'), {
  includeDirs: [PROTO_DIR],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true, // absent = zero value: a server that omits a zero field and one that sends it compare equal
  oneofs: true,
});
const etcdserverpb = grpc.loadPackageDefinition(watchDefinition).etcdserverpb as grpc.GrpcObject;

export interface WatchCreateRequest {
  key: Bytes;
  range_end?: Bytes;
  start_revision?: Int64;
  progress_notify?: boolean;
  filters?: ('NOPUT' | 'NODELETE')[];
  prev_kv?: boolean;
  watch_id?: Int64;
  fragment?: boolean;
}

export interface WatchKeyValue {
  key: Buffer;
  create_revision: string;
  mod_revision: string;
  version: string;
  value: Buffer;
  lease: string;
}
export interface WatchEventMsg {
  type: 'PUT' | 'DELETE';
  kv: WatchKeyValue | null;
  prev_kv: WatchKeyValue | null;
}
export interface WatchResponse {
  header: { cluster_id: string; member_id: string; revision: string; raft_term: string } | null;
  watch_id: string;
  created: boolean;
  canceled: boolean;
  compact_revision: string;
  cancel_reason: string;
  fragment: boolean;
  events: WatchEventMsg[];
}

/** How long any wait of these helpers may last at most. */
export const MAX_WAIT_MS = 10_000;

/** One Watch stream. Every response is appended to `responses`; nothing here waits unboundedly. */
export class WatchStream {
  readonly responses: WatchResponse[] = [];
  /** Set when the stream ended (server closed it) or failed. */
  ended = false;
  error: grpc.ServiceError | undefined;
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<unknown, WatchResponse>;
  private lastArrival = Date.now();
  private waiters: (() => void)[] = [];

  constructor(readonly endpoint: string) {
    const Ctor = etcdserverpb.Watch as grpc.ServiceClientConstructor;
    this.client = new Ctor(endpoint, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': -1,
      'grpc.max_receive_message_length': -1,
    });
    this.call = (this.client as unknown as { Watch(): grpc.ClientDuplexStream<unknown, WatchResponse> }).Watch();
    this.call.on('data', (r: WatchResponse) => {
      this.responses.push(r);
      this.lastArrival = Date.now();
      this.wake();
    });
    this.call.on('error', (e: grpc.ServiceError) => {
      this.error = e;
      this.ended = true;
      this.wake();
    });
    this.call.on('end', () => {
      this.ended = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Any WatchRequest object (e.g. one with no request_union set). */
  send(req: object): void {
    this.call.write(req);
  }
  create(req: WatchCreateRequest): void {
    this.call.write({ create_request: req });
  }
  cancel(watchId: Int64): void {
    this.call.write({ cancel_request: { watch_id: watchId } });
  }
  progress(): void {
    this.call.write({ progress_request: {} });
  }

  /** Resolves once pred(responses) holds; rejects after timeoutMs (or when the stream ends first). */
  waitFor(pred: (rs: WatchResponse[]) => boolean, timeoutMs = MAX_WAIT_MS, what = 'condition'): Promise<WatchResponse[]> {
    return new Promise((res, rej) => {
      const deadline = Date.now() + timeoutMs;
      let timer: NodeJS.Timeout | undefined;
      const check = () => {
        if (pred(this.responses)) {
          clearTimeout(timer);
          return res(this.responses);
        }
        if (this.ended) {
          clearTimeout(timer);
          return rej(new Error(`watch stream ended (${this.error?.message ?? 'end'}) before ${what}`));
        }
        this.waiters.push(check);
      };
      timer = setTimeout(() => {
        this.waiters = this.waiters.filter((f) => f !== check);
        rej(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${this.responses.length} responses`));
      }, Math.max(0, deadline - Date.now()));
      check();
    });
  }

  /** Waits until no response has arrived for quietMs (at most maxMs in all). */
  async waitQuiet(quietMs: number, maxMs = MAX_WAIT_MS): Promise<void> {
    const deadline = Date.now() + maxMs;
    const start = Date.now();
    for (;;) {
      const since = Date.now() - Math.max(this.lastArrival, start);
      if (since >= quietMs || this.ended) return;
      if (Date.now() >= deadline) return;
      await sleep(Math.min(quietMs - since, deadline - Date.now()) + 1);
    }
  }

  /** Ends the client's sending side only (half-close); responses are still received. */
  halfClose(): void {
    this.call.end();
  }

  /** Closes our side of the stream (the server then ends it) and the channel. */
  close(): void {
    try {
      this.call.end();
    } catch {
      /* already closed */
    }
    this.call.cancel();
    this.client.close();
  }
}

/** Request objects with the bytes fields (key, range_end, value) as Buffers: a string would be read as base64. */
export function bytesFields<T>(req: T): T {
  const walk = (v: unknown, field = ''): unknown => {
    if (typeof v === 'string' && (field === 'key' || field === 'range_end' || field === 'value')) return Buffer.from(v, 'latin1');
    if (Array.isArray(v)) return v.map((x) => walk(x));
    if (v && typeof v === 'object' && !Buffer.isBuffer(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, walk(x, k)]));
    }
    return v;
  };
  return walk(req) as T;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Normalised text
// ---------------------------------------------------------------------------------------------

/** Printable text as it is, other bytes (and long values) as a length and a short hash. */
export function showBytes(b: Buffer): string {
  if (b.length > 48) return `<${b.length}B:${createHash('sha1').update(b).digest('hex').slice(0, 8)}>`;
  if (/^[\x21-\x7e]*$/.test(b.toString('latin1'))) return b.toString('latin1');
  return `0x${b.toString('hex')}`;
}

function showKv(kv: WatchKeyValue | null): string {
  if (!kv) return 'null';
  return `${showBytes(kv.key)}=${showBytes(kv.value)} c${kv.create_revision} m${kv.mod_revision} v${kv.version} l${kv.lease}`;
}

/** Cluster id, member id and raft term: "set" (non-zero, value random per cluster) or 0. */
function showHeader(h: WatchResponse['header']): string {
  if (!h) return 'no-header';
  const p = (v: string, name: string) => (v === '0' ? '0' : name);
  return `${p(h.cluster_id, 'C')}/${p(h.member_id, 'M')}/rev=${h.revision}/${p(h.raft_term, 'T')}`;
}

/**
 * One line per response: watch id, header, flags, and every event with its kv and prev_kv (all fields,
 * zero ones too, so that a missing field shows).
 */
export function describeResponse(r: WatchResponse): string {
  const parts = [`id=${r.watch_id}`, showHeader(r.header)];
  if (r.created) parts.push('created');
  if (r.canceled) parts.push('canceled');
  if (r.compact_revision !== '0') parts.push(`compact_revision=${r.compact_revision}`);
  if (r.cancel_reason) parts.push(`reason="${r.cancel_reason}"`);
  if (r.fragment) parts.push('fragment');
  if (r.events.length === 0 && !r.created && !r.canceled) parts.push('(no events)');
  const events = r.events.map((e) => `[${e.type} ${showKv(e.kv)}${e.prev_kv ? ` prev: ${showKv(e.prev_kv)}` : ''}]`);
  if (events.length <= 12) parts.push(...events);
  else {
    // Long responses: the first and last events, and a hash of all of them.
    const hash = createHash('sha1').update(events.join('\n')).digest('hex').slice(0, 12);
    parts.push(...events.slice(0, 3), `... ${events.length} events (sha1 ${hash}) ...`, ...events.slice(-3));
  }
  return parts.join(' ');
}
