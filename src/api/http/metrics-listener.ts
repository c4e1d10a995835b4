import * as http from 'node:http';
import type * as net from 'node:net';
import type { EtcdServer } from '../../server/etcd-server';
import { bindListeners, type BoundListener } from '../../net/bound-listener';
import { tlsAccept, type ClientTls } from './client-tls';
import { httpError, registerServerMetrics, serveHealth, serveMetrics } from './endpoints';

// etcd's --listen-metrics-urls (embed/etcd.go serveMetrics): a listener per URL whose mux serves only
// /metrics and /health (etcdhttp.HandleMetricsHealth); anything else is Go's 404. https URLs use the
// client TLS configuration, as etcd's do (its ClientTLSInfo).

export interface MetricsListeners {
  /** The port each metrics URL is served on (in order). */
  ports: number[];
  close(): Promise<void>;
}

/** The handler of a metrics listener: /metrics and /health, anything else 404. */
export function metricsHandler(s: EtcdServer): http.RequestListener {
  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    // Go's ServeMux redirects unclean paths (e.g. //metrics) to their clean form.
    if (/\/\/|\/\.\.?(\/|$)/.test(path)) {
      res.writeHead(301, { Location: path.replace(/\/{2,}/g, '/') + (q < 0 ? '' : url.slice(q)), 'Content-Length': 0 });
      res.end();
      return;
    }
    if (path === '/metrics') return serveMetrics(res);
    if (path === '/health') {
      return void serveHealth(s, req, res).catch((err) => {
        s.log('error', 'health check failed', { error: (err as Error)?.message ?? String(err) });
        if (!res.headersSent) httpError(res, 500, 'Internal Server Error');
      });
    }
    httpError(res, 404, '404 page not found');
  };
}

/**
 * Binds and serves the metrics URLs (etcd's --listen-metrics-urls). https URLs need tls (the client
 * TLS configuration); the caller closes the listeners at shutdown.
 */
export async function startMetricsListeners(s: EtcdServer, listen: readonly URL[] | readonly BoundListener[], tls?: ClientTls): Promise<MetricsListeners> {
  // Bound already (the command binds every port before it opens the data dir), or bound here.
  const bound: BoundListener[] = listen.length && listen[0] instanceof URL ? await bindMetricsListeners(listen as URL[]) : [...(listen as BoundListener[])];
  const urls = bound.map((l) => l.url);
  if (urls.length === 0) return { ports: [], close: async () => {} };
  const secure = (u: URL) => u.protocol === 'https:';
  if (urls.some(secure) && !tls) {
    await Promise.all(bound.map((l) => l.close()));
    throw new Error('https metrics URLs need the client TLS configuration (--cert-file and --key-file, or --auto-tls)');
  }
  registerServerMetrics(s);
  const server = http.createServer({ requestTimeout: 0, keepAliveTimeout: 30_000 }, metricsHandler(s));
  const sockets = new Set<net.Socket>();
  const accept = (sock: net.Socket) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    server.emit('connection', sock);
  };
  for (const l of bound) l.serve(secure(l.url) ? tlsAccept(tls!, s.log, accept) : accept);
  for (const l of bound) s.log('info', 'serving metrics', { address: l.url.href });
  return {
    ports: bound.map((l) => l.port),
    async close() {
      // Stop accepting, then end the connections held open by keep-alive: the listeners' close waits
      // for every accepted connection to end.
      const closing = Promise.all(bound.map((l) => l.close()));
      server.close();
      for (const sk of sockets) sk.destroy();
      await closing;
    },
  };
}

/** Binds the --listen-metrics-urls (connections wait until startMetricsListeners serves them). */
export function bindMetricsListeners(urls: readonly URL[]): Promise<BoundListener[]> {
  return bindListeners(urls, 'metrics', 2379);
}
