// Why: small pieces shared by tls-info.ts and peer-check.ts (kept apart so neither imports the
// other): the configuration error type, Go-worded file reads, and when client certs are required.

import { promises as fsp } from 'node:fs';
import { TLSSocket } from 'node:tls';

/** A configuration error, with etcd's text (start-up fails with it). */
export class TlsConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TlsConfigError';
  }
}

const GO_ERRNO: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EISDIR: 'is a directory',
  ENOTDIR: 'not a directory',
  ELOOP: 'too many levels of symbolic links',
};

/** fs.readFile with Go's os error wording ("open /x: no such file or directory"). */
export async function readFileGo(path: string): Promise<Buffer> {
  try {
    return await fsp.readFile(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const text = (err.code && GO_ERRNO[err.code]) ?? err.message;
    const op = err.code === 'EISDIR' ? 'read' : 'open';
    throw new TlsConfigError(`${op} ${path}: ${text}`);
  }
}

/** Whether a server asks for and verifies client certificates.
 *  etcd ServerConfig(): RequireAndVerifyClientCert when TrustedCAFile != "" || ClientCertAuth. */
export function requiresClientCert(info: { trustedCaFile: string; clientCertAuth: boolean }): boolean {
  return info.trustedCaFile !== '' || info.clientCertAuth;
}

/**
 * The common name of the client certificate a TLS handshake verified (etcd's AuthInfoFromTLS: the first
 * verified chain's leaf); undefined on a plain socket, without a verified certificate, or with an empty CN.
 */
export function verifiedCommonName(sock: unknown): string | undefined {
  if (!(sock instanceof TLSSocket) || !sock.authorized) return undefined;
  const cn = sock.getPeerCertificate()?.subject?.CN;
  return typeof cn === 'string' && cn !== '' ? cn : undefined;
}
