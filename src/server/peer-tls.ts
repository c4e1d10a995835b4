import { applyAutoTls, clientTlsOptions, isTlsInfoEmpty, serverTlsOptions, tlsInfoString, TlsConfigError } from '../tls';
import type { PeerTls } from '../raft/transport/sockets';
import type { Log } from './bootstrap';
import type { ServerConfig } from './config';

/**
 * The peer TLS of this member (etcd's PeerTLSInfo, from --peer-cert-file, --peer-key-file,
 * --peer-trusted-ca-file, --peer-client-cert-auth, --peer-crl-file, --peer-cert-allowed-cn / -hostname,
 * --peer-auto-tls), with the listener's and dialer's options made from it; undefined without certificates.
 * An https:// listen URL without them is refused in etcd's words.
 */
export async function preparePeerTls(cfg: ServerConfig, log: Log): Promise<PeerTls | undefined> {
  const listen = cfg.listenPeerUrls ?? [];
  const info = await applyAutoTls(cfg.peerTls, {
    dataDir: cfg.dataDir, kind: 'peer', listenUrls: listen.map((u) => u.href), onWarn: (m) => log('warn', m),
  });
  if (isTlsInfoEmpty(info)) {
    const secure = listen.find((u) => u.protocol === 'https:');
    if (secure) throw new TlsConfigError(`TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url ${secure.href.replace(/\/$/, '')} with HTTPS scheme`);
    return undefined;
  }
  // etcd's dialer does not verify a self-signed (--peer-auto-tls) member: InsecureSkipVerify.
  const dialInfo = info.autoTls ? { ...info, insecureSkipVerify: true } : info;
  const [server, client] = await Promise.all([serverTlsOptions(info, { alpnProtocols: [] }), clientTlsOptions(dialInfo)]);
  log('info', `peerTLS: ${tlsInfoString(info)}`);
  return { info, server, client };
}
