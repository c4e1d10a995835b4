import * as grpc from '@grpc/grpc-js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as protobuf from 'protobufjs';
import { encodeJsonRequest, gatewayRoot, goString, JsonInputError, messageJson, readJson, readJsonPrefix, type JsonValue } from './jsonpb';
import type { Log } from '../../server/bootstrap';

// etcd 3.4's grpc-gateway: POST /v3/<service>/<call> with a JSON body. As etcd's, it is a client of the
// member's own gRPC server over loopback: the JSON becomes the protobuf request, the gRPC answer (or
// status) becomes JSON, so every check, limit and error is the gRPC service's own.

/** The services etcd 3.4 registers on its gateway (embed/serve.go registerGateway). */
const GATEWAY_SERVICES = [
  'etcdserverpb.KV', 'etcdserverpb.Watch', 'etcdserverpb.Lease', 'etcdserverpb.Cluster',
  'etcdserverpb.Maintenance', 'etcdserverpb.Auth', 'v3lockpb.Lock', 'v3electionpb.Election',
];

export interface Route {
  path: string; // the gRPC method path, /pkg.Service/Method
  requestType: protobuf.Type;
  responseType: protobuf.Type;
  requestStream: boolean;
  responseStream: boolean;
}

let routes: Map<string, Route> | undefined;

/** HTTP path → gRPC method, from the google.api.http options in the protos (the first binding wins, as in etcd). */
export function gatewayRoutes(): Map<string, Route> {
  if (routes) return routes;
  const root = gatewayRoot();
  routes = new Map();
  for (const name of GATEWAY_SERVICES) {
    const svc = root.lookupService(name);
    for (const m of svc.methodsArray) {
      const route: Route = {
        path: `/${name}/${m.name}`,
        requestType: m.resolvedRequestType!,
        responseType: m.resolvedResponseType!,
        requestStream: !!m.requestStream,
        responseStream: !!m.responseStream,
      };
      for (const opt of (m.parsedOptions ?? []) as Record<string, any>[]) {
        const http = opt['(google.api.http)'];
        if (!http) continue;
        const bindings = [http, ...[http.additional_bindings ?? []].flat()];
        for (const b of bindings) if (b.post && !routes.has(b.post)) routes.set(b.post, route);
      }
    }
  }
  return routes;
}

/** runtime.HTTPStatusFromCode of etcd 3.4's grpc-gateway (v1.9: FailedPrecondition is still 412). */
export function httpStatusFromCode(code: number): number {
  return [200, 408, 500, 400, 504, 404, 409, 403, 429, 412, 409, 400, 501, 500, 503, 500, 401][code] ?? 500;
}

const HTTP_STATUS_TEXT: Record<number, string> = {
  200: 'OK', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 408: 'Request Timeout',
  409: 'Conflict', 412: 'Precondition Failed', 429: 'Too Many Requests', 500: 'Internal Server Error', 501: 'Not Implemented',
  503: 'Service Unavailable', 504: 'Gateway Timeout',
};

/** The gateway's error body: {"error","message","code"} (internal.Error through jsonpb). */
function errorBody(code: number, message: string): string {
  const parts: string[] = [];
  if (message) parts.push(`"error":${goString(message)}`, `"message":${goString(message)}`);
  if (code) parts.push(`"code":${code}`);
  return `{${parts.join(',')}}`;
}

const identity = (b: Buffer) => b;

/**
 * What etcd's gateway answers for calls under way when etcd stops: its loopback gRPC connection closes
 * under them, and grpc-go reports UNAVAILABLE "transport is closing" (503, or the error chunk of a stream).
 */
const TRANSPORT_CLOSING = { code: grpc.status.UNAVAILABLE, details: 'transport is closing' };

export interface GatewayOptions {
  /** host:port of this member's gRPC server. */
  target: string;
  /** Largest request body read; larger ones are answered as gRPC answers an oversized message. */
  maxBodyBytes: number;
  /** The gRPC server's receive limit, for the message of that answer. */
  maxRecvBytes: number;
  /** The server's logger. */
  log: Log;
  /** Dial the target over TLS with this key pair, without verifying the server (it is this member). */
  tls?: { cert: Buffer; key: Buffer };
}

export class Gateway {
  private client: grpc.Client | undefined;
  private readonly calls = new Set<{ cancel(): void }>();
  /** close() was called: the calls it cancels answer as etcd's do when it stops. */
  private closing = false;

  constructor(private readonly opts: GatewayOptions) {}

  private grpcClient(): grpc.Client {
    const t = this.opts.tls;
    const creds = t ? grpc.credentials.createSsl(null, t.key, t.cert, { rejectUnauthorized: false, checkServerIdentity: () => undefined }) : grpc.credentials.createInsecure();
    this.client ??= new grpc.Client(this.opts.target, creds, {
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
    });
    return this.client;
  }

  /** Cancels the calls under way and closes the loopback connection. */
  close(): void {
    this.closing = true;
    for (const call of this.calls) call.cancel();
    this.calls.clear();
    this.client?.close();
    this.client = undefined;
  }

  /** Serves a request whose path is under /v3/ (already stripped of a /v3beta prefix). */
  handle(path: string, req: IncomingMessage, res: ServerResponse, notFound: () => void): void {
    const route = gatewayRoutes().get(path);
    if (!route) return notFound();
    if (req.method !== 'POST') {
      // grpc-gateway: the path exists for another method.
      const body = 'Method Not Allowed\n';
      res.writeHead(405, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff', 'Content-Length': body.length });
      res.end(body);
      return;
    }
    if (route.requestStream) return this.bidi(route, req, res);
    void this.readBody(req).then((body) => {
      if (body === null) return this.tooLarge(res);
      let bytes: Buffer;
      try {
        bytes = encodeJsonRequest(route.requestType, readJson(body));
      } catch (err) {
        return this.jsonError(res, err);
      }
      if (route.responseStream) this.serverStream(route, bytes, req, res);
      else this.unary(route, bytes, req, res);
    });
  }

  /** The whole body, or null when it exceeds the limit. */
  private readBody(req: IncomingMessage): Promise<string | null> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let over = false;
      req.on('data', (d: Buffer) => {
        size += d.length;
        if (over) return;
        if (size > this.opts.maxBodyBytes) {
          // The rest is read and dropped (the connection stays usable); nothing of it is kept.
          over = true;
          chunks.length = 0;
          return;
        }
        chunks.push(d);
      });
      req.on('end', () => resolve(over ? null : Buffer.concat(chunks).toString('utf8')));
      req.on('error', () => resolve(null));
    });
  }

  private tooLarge(res: ServerResponse): void {
    // A body this large makes a message beyond the gRPC limit: answer as etcd's gateway relays the gRPC
    // server's refusal (429, its trailer). etcd names the message's size, unknown here without reading
    // and decoding the whole body: the limit stands for it.
    this.sendError(res, grpc.status.RESOURCE_EXHAUSTED,
      `grpc: received message larger than max (${this.opts.maxBodyBytes} vs. ${this.opts.maxRecvBytes})`, true);
  }

  private jsonError(res: ServerResponse, err: unknown): void {
    if (!(err instanceof JsonInputError)) this.opts.log('error', 'gateway: cannot read request', { error: (err as Error)?.message ?? String(err) });
    this.sendError(res, grpc.status.INVALID_ARGUMENT, (err as Error).message, false);
  }

  private sendError(res: ServerResponse, code: number, message: string, fromGrpc: boolean): void {
    if (res.headersSent) return void res.end();
    const body = errorBody(code, message);
    if (fromGrpc) {
      // As grpc-gateway: the server's trailer metadata goes out as HTTP trailers.
      res.writeHead(httpStatusFromCode(code), { 'Content-Type': 'application/json', Trailer: 'Grpc-Trailer-Content-Type' });
      res.write(body);
      res.addTrailers({ 'Grpc-Trailer-Content-Type': 'application/grpc' });
      res.end();
    } else {
      res.writeHead(httpStatusFromCode(code), { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    }
  }

  private metadata(req: IncomingMessage): grpc.Metadata {
    // grpc-gateway forwards Authorization and Grpc-Metadata-* headers as gRPC metadata.
    const md = new grpc.Metadata();
    // As grpc-gateway marks what it forwards: etcd then ignores the TLS connection's certificate for
    // auth (the gateway dials with the server's own), so a gateway request is its token's user or none.
    md.add('grpcgateway-accept', String(req.headers.accept ?? '*/*'));
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined) continue;
      const lk = k.toLowerCase();
      const key = lk === 'authorization' ? 'authorization' : lk.startsWith('grpc-metadata-') ? lk.slice('grpc-metadata-'.length) : undefined;
      if (!key || key.endsWith('-bin')) continue;
      for (const one of [v].flat()) md.add(key, one);
    }
    return md;
  }

  private unary(route: Route, bytes: Buffer, req: IncomingMessage, res: ServerResponse): void {
    const call = this.grpcClient().makeUnaryRequest(route.path, identity, identity, bytes, this.metadata(req), {}, (err, reply) => {
      if (err) {
        const st = this.closing ? TRANSPORT_CLOSING : err;
        return this.sendError(res, st.code, st.details, true);
      }
      let body: string;
      try {
        body = messageJson(route.responseType, route.responseType.decode(reply!));
      } catch (e) {
        return this.sendError(res, grpc.status.INTERNAL, (e as Error).message, true);
      }
      res.writeHead(200, {
        'Content-Type': 'application/json',
        'Grpc-Metadata-Content-Type': 'application/grpc',
        'Content-Length': Buffer.byteLength(body),
      });
      res.end(body);
    });
    this.track(call);
    res.on('close', () => {
      if (!res.writableFinished) call.cancel();
    });
  }

  private serverStream(route: Route, bytes: Buffer, req: IncomingMessage, res: ServerResponse): void {
    const call = this.grpcClient().makeServerStreamRequest(route.path, identity, identity, bytes, this.metadata(req), {});
    this.pipeResponses(route, call, res);
  }

  private bidi(route: Route, req: IncomingMessage, res: ServerResponse): void {
    const call = this.grpcClient().makeBidiStreamRequest(route.path, identity, identity, this.metadata(req), {});
    this.pipeResponses(route, call, res);
    // The body is a sequence of JSON requests, each sent as it completes. When it ends, grpc-gateway
    // half-closes the stream: etcd's LeaseKeepAlive then ends its answer, its Watch ignores it and goes
    // on sending. Plinth's Watch is not given the half-close, so that it goes on as etcd's does.
    let text = '';
    let failed = false;
    let sent = 0;
    // As grpc-gateway: a first request that cannot be read fails the whole call (500, code Unknown,
    // before any answer); a later one only stops the reading of the body, the stream goes on.
    const bad = (err: unknown) => {
      failed = true;
      text = '';
      if (sent > 0) return;
      this.untrack(call);
      call.cancel();
      this.sendError(res, grpc.status.UNKNOWN, (err as Error).message, false);
    };
    const pump = (final: boolean) => {
      for (;;) {
        let r: [JsonValue, number] | undefined;
        try {
          r = readJsonPrefix(text);
        } catch (err) {
          if (err instanceof JsonInputError && err.message === 'unexpected EOF' && !final) return; // wait for more
          return bad(err);
        }
        if (!r) return;
        text = text.slice(r[1]);
        let bytes: Buffer;
        try {
          bytes = encodeJsonRequest(route.requestType, r[0]);
        } catch (err) {
          return bad(err);
        }
        sent++;
        call.write(bytes);
      }
    };
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      if (failed) return;
      text += d;
      if (text.length > this.opts.maxBodyBytes) return bad(new Error(`grpc: received message larger than max (${text.length} vs. ${this.opts.maxRecvBytes})`));
      pump(false);
    });
    req.on('end', () => {
      if (!failed) pump(true);
      if (!failed && route.path !== '/etcdserverpb.Watch/Watch') call.end();
    });
  }

  private headerWritten = new WeakSet<ServerResponse>();

  private track(call: grpc.Call | grpc.ClientUnaryCall): void {
    this.calls.add(call);
    const done = () => this.calls.delete(call);
    call.on('status', done);
  }

  private untrack(call: { cancel(): void }): void {
    this.calls.delete(call);
    this.dropped.add(call);
  }

  /** Calls whose HTTP answer was already given (their cancellation must not write again). */
  private readonly dropped = new WeakSet<object>();

  private pipeResponses(route: Route, call: grpc.ClientReadableStream<Buffer> | grpc.ClientDuplexStream<Buffer, Buffer>, res: ServerResponse): void {
    this.track(call);
    // grpc-js reads ahead into the call's object-mode buffer up to its high-water mark (16 messages, of up
    // to a MiB each for a watch catching up) even while the call is paused: 16 MiB per watch whose client
    // does not read. One message ahead is enough to keep a reading client busy, and keeps the rest where
    // the server bounds it (its watch queue, then its victims).
    const readable = (call as unknown as { _readableState?: { highWaterMark: number } })._readableState;
    if (readable) readable.highWaterMark = 1;
    let ended = false;
    let paused = false;
    const start = () => {
      if (this.headerWritten.has(res) || res.headersSent) return;
      this.headerWritten.add(res);
      res.writeHead(200, { 'Content-Type': 'application/json', 'Grpc-Metadata-Content-Type': 'application/grpc', 'Transfer-Encoding': 'chunked' });
    };
    call.on('data', (b: Buffer) => {
      if (ended) return;
      start();
      let json: string;
      try {
        json = messageJson(route.responseType, route.responseType.decode(b));
      } catch (e) {
        ended = true;
        call.cancel();
        return this.streamError(res, grpc.status.INTERNAL, (e as Error).message);
      }
      // A client that does not read holds the call back (grpc-js stops reading, HTTP/2 flow control
      // stops the server's sends, whose watch queue is bounded): its answers do not pile up here.
      if (!res.write(`{"result":${json}}\n`) && !paused) {
        paused = true;
        call.pause();
        res.once('drain', () => {
          paused = false;
          call.resume();
        });
      }
    });
    call.on('error', (err: grpc.ServiceError) => {
      if (ended || this.dropped.has(call)) return;
      ended = true;
      if (err.code === grpc.status.CANCELLED && res.destroyed) return;
      if (!this.closing) return this.streamError(res, err.code, err.details);
      // Stopping: the answer ends, then its connection (etcd's closes it), so that the stop need not
      // wait for an idle keep-alive connection.
      const sock = res.socket;
      this.streamError(res, TRANSPORT_CLOSING.code, TRANSPORT_CLOSING.details);
      sock?.end();
    });
    call.on('end', () => {
      if (ended) return;
      ended = true;
      start();
      res.end();
    });
    res.on('close', () => {
      if (!ended) {
        ended = true;
        call.cancel();
      }
    });
  }

  /** grpc-gateway's stream error chunk; the status is the error's when nothing was written yet. */
  private streamError(res: ServerResponse, code: number, message: string): void {
    if (res.writableEnded || res.destroyed) return;
    const http = httpStatusFromCode(code);
    const parts = [`"grpc_code":${code}`, `"http_code":${http}`];
    if (message) parts.push(`"message":${goString(message)}`);
    parts.push(`"http_status":${goString(HTTP_STATUS_TEXT[http] ?? '')}`);
    const body = `{"error":{${parts.join(',')}}}`;
    if (!res.headersSent) {
      this.headerWritten.add(res);
      res.writeHead(http, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    }
    res.end(body);
  }
}

