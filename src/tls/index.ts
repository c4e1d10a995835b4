// Why: one import point for TLS configuration (used by the client listeners and the raft peer
// transport); this module imports nothing from api/, server/ or raft/.

export * from './tls-info';
export * from './cipher-suites';
export * from './self-cert';
export * from './acceptor';
export {
  CLIENT_CERT_AUTH_FAILED,
  TlsRejectError,
  checkPeerCertificate,
  guardSecureServer,
  needsPeerCheck,
  goSerialHex,
  parseCrlSerials,
  type GuardOptions,
  type PeerRole,
} from './peer-check';
