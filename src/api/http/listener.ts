import { PPROF_PREFIX, PprofHandler } from './pprof';
import * as http from 'node:http';
import * as net from 'node:net';
import { verifiedCommonName } from '../../tls';
import { GRPC_OVERHEAD_BYTES } from '../../server/config';
import type { EtcdServer } from '../../server/etcd-server';
import { httpError, registerServerMetrics, serveHealth, serveMetrics, serveVersion } from './endpoints';
import { Gateway, type GatewayOptions } from './gateway';
import type { GrpcServer } from '../h2/grpc-server';
import { bindListeners, type BoundListener } from '../../net/bound-listener';
import { tlsAccept, type ClientTls } from './client-tls';

// One listener per client URL, as etcd's cmux: each connection's first bytes decide. The HTTP/2
// preface goes to our gRPC server (h2/), anything else to an HTTP/1.1 server that
// serves the JSON gateway, /health, /version and /metrics.

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

const CORS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'POST, GET, OPTIONS, PUT, DELETE',
  'Access-Control-Allow-Headers': 'accept, content-type, authorization',
};

export interface ClientListeners {
  /** The port each client URL is served on (in order). */
  ports: number[];
  /** Stops accepting, ends HTTP connections (after graceMs for streams) and the gateway's client. */
  close(graceMs?: number): Promise<void>;
}

/** Host and port to listen on for a client URL (brackets of an IPv6 literal removed). */
function hostPort(u: URL): { host: string; port: number } {
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(u.port || '2379') };
}

/** Where the gateway dials this member: the first listener, through loopback when it listens on all addresses. */
function gatewayTarget(u: URL, port: number): string {
  const { host } = hostPort(u);
  if (host === '0.0.0.0' || host === '') return `127.0.0.1:${port}`;
  if (host === '::') return `[::1]:${port}`;
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The HTTP/1 side: etcd's handlers on the client URL. */
export function httpHandler(s: EtcdServer, gateway: Gateway): http.RequestListener {
  // --enable-pprof: runtime profiles under /debug/pprof/ (otherwise those paths are 404, as etcd's).
  const pprof = s.cfg.enablePprof ? new PprofHandler(s.log) : undefined;
  return (req, res) => {
    // etcd refuses a gateway request whose TLS client certificate has a CN while auth and client-cert-auth
    // are on: the gateway would not use it (it dials with the server's own), so the client is told.
    if (s.cfg.clientTls.clientCertAuth && s.authEnabled && (req.url ?? '').startsWith('/v3/') && verifiedCommonName(req.socket) !== undefined) {
      return httpError(res, 400, 'CommonName of client sending a request against gateway will be ignored and not used as expected');
    }
    for (const [k, v] of Object.entries(CORS)) res.setHeader(k, v);
    if (req.method === 'OPTIONS') {
      res.writeHead(200, { 'Content-Length': 0 });
      res.end();
      return;
    }
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    let path = q < 0 ? url : url.slice(0, q);
    // Go's ServeMux redirects unclean paths (e.g. //) to their clean form.
    if (/\/\/|\/\.\.?(\/|$)/.test(path)) {
      const clean = path.replace(/\/{2,}/g, '/');
      res.writeHead(301, { Location: clean + (q < 0 ? '' : url.slice(q)), 'Content-Length': 0 });
      res.end();
      return;
    }
    const pageNotFound = () => httpError(res, 404, '404 page not found');
    if (path === '/health') return void serveHealth(s, req, res).catch((err) => {
      s.log('error', 'health check failed', { error: (err as Error)?.message ?? String(err) });
      if (!res.headersSent) httpError(res, 500, 'Internal Server Error');
    });
    if (path === '/version') return serveVersion(req, res);
    if (pprof && path.startsWith(PPROF_PREFIX)) return pprof.handle(path, req, res);
    if (path === '/metrics') return serveMetrics(res);
    // etcd 3.4 still serves the gateway's /v3beta/ paths (with a deprecation warning); /v3alpha is gone.
    if (path.startsWith('/v3beta/')) path = '/v3/' + path.slice('/v3beta/'.length);
    if (path.startsWith('/v3/')) return gateway.handle(path, req, res, () => httpError(res, 404, 'Not Found'));
    pageNotFound();
  };
}

/**
 * Serves gRPC (grpcServer, whose services are already added) and HTTP on every client URL: on the
 * listeners bound already (bindClientListeners, before the member opened its data dir), or bound here.
 * The grpc server must not be bound elsewhere; it is shut down by its owner (tryShutdown and
 * forceShutdown reach the injected connections).
 */
export async function serveClientUrls(s: EtcdServer, grpcServer: GrpcServer, listen: URL[] | BoundListener[], tls?: ClientTls): Promise<ClientListeners> {
  const maxRecvBytes = s.cfg.maxRequestBytes + GRPC_OVERHEAD_BYTES;
  // The gateway's bodies are bounded in bytes (etcd's gateway reads any body whole; its gRPC server then
  // refuses the message). A message at the gRPC limit is 4/3 of it in JSON with its bytes in base64;
  // twice the limit leaves room for field names, escapes and spacing, and 1 MiB more for requests of
  // many small fields (a txn of small ops is a few times its protobuf size in JSON, but small). Beyond
  // it the message would be refused anyway: the body is not kept, and the answer is the gRPC refusal.
  const maxBodyBytes = 2 * maxRecvBytes + 1024 * 1024;
  const gatewayOpts: GatewayOptions = { target: '', maxRecvBytes, maxBodyBytes, log: s.log };
  const gateway = new Gateway(gatewayOpts);
  registerServerMetrics(s);
  const httpServer = http.createServer({ requestTimeout: 0, keepAliveTimeout: 30_000 }, httpHandler(s, gateway));
  const sockets = new Set<net.Socket>();
  const httpSockets = new WeakSet<net.Socket>();
  const isHttp = (sk: net.Socket) => httpSockets.has(sk);
  const route = (sock: net.Socket) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    const chunks: Buffer[] = [];
    let len = 0;
    const onData = (d: Buffer) => {
      chunks.push(d);
      len += d.length;
      const head = chunks.length === 1 ? d : Buffer.concat(chunks, len);
      const n = Math.min(head.length, PREFACE.length);
      const h2 = head.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (h2 && head.length < PREFACE.length) return; // could still be either: wait for more
      sock.off('data', onData);
      sock.off('error', onError);
      if (h2) {
        grpcServer.injectConnection(sock, head);
      } else {
        // The HTTP/1 parser takes the socket's handle over; the bytes already read are handed to it
        // as the socket's data event delivers them.
        httpSockets.add(sock);
        httpServer.emit('connection', sock);
        sock.emit('data', head);
      }
    };
    const onError = () => sock.destroy();
    sock.on('data', onData);
    sock.on('error', onError);
  };

  let bound: BoundListener[];
  try {
    bound = listen.length && listen[0] instanceof URL ? await bindClientListeners(listen as URL[]) : (listen as BoundListener[]);
  } catch (err) {
    grpcServer.forceShutdown();
    throw err;
  }
  const secure = (u: URL) => u.protocol === 'https:';
  if (bound.some((l) => secure(l.url)) && !tls) {
    grpcServer.forceShutdown();
    throw new Error('https client URLs need the client TLS configuration');
  }
  for (const l of bound) l.serve(secure(l.url) ? tlsAccept(tls!, s.log, route) : route);
  const ports = bound.map((l) => l.port);
  gatewayOpts.target = gatewayTarget(bound[0].url, ports[0]);
  // etcd's gateway dials its member over TLS on an https port, presenting the server's own certificate and
  // not verifying the member's (it dials itself).
  if (secure(bound[0].url)) gatewayOpts.tls = tls!.keyPair;

  return {
    ports,
    async close(graceMs = 1000) {
      for (const l of bound) void l.close();
      httpServer.close();
      httpServer.closeIdleConnections();
      gateway.close();
      // Streams answered by the gateway end once their calls are cancelled; give them a moment.
      const deadline = Date.now() + graceMs;
      while (Date.now() < deadline && [...sockets].some((sk) => !sk.destroyed && isHttp(sk))) await new Promise((r) => setTimeout(r, 20));
      httpServer.closeAllConnections();
    },
  };
}

/** Binds the client URLs (their port default is etcd's 2379), for serveClientUrls. */
export function bindClientListeners(urls: readonly URL[]): Promise<BoundListener[]> {
  return bindListeners(urls, 'clients', 2379);
}
