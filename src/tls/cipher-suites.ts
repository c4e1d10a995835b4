// Why: etcd takes --cipher-suites as Go crypto/tls names (tlsutil.GetCipherSuite), while Node's
// `ciphers` option wants OpenSSL names. This table translates one to the other, refuses unknown
// names with etcd's exact error, and keeps Go's rule that the TLS 1.3 suites are not configurable.

import { getCiphers } from 'node:tls';

/** Go name (tls.CipherSuites() + tls.InsecureCipherSuites() of Go 1.19, as etcd 3.4.23) → OpenSSL name. */
export const GO_TO_OPENSSL_CIPHER: Readonly<Record<string, string>> = Object.freeze({
  // tls.CipherSuites()
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  TLS_AES_128_GCM_SHA256: 'TLS_AES_128_GCM_SHA256',
  TLS_AES_256_GCM_SHA384: 'TLS_AES_256_GCM_SHA384',
  TLS_CHACHA20_POLY1305_SHA256: 'TLS_CHACHA20_POLY1305_SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  // tls.InsecureCipherSuites()
  TLS_RSA_WITH_RC4_128_SHA: 'RC4-SHA',
  TLS_RSA_WITH_3DES_EDE_CBC_SHA: 'DES-CBC3-SHA',
  TLS_RSA_WITH_AES_128_CBC_SHA256: 'AES128-SHA256',
  TLS_ECDHE_ECDSA_WITH_RC4_128_SHA: 'ECDHE-ECDSA-RC4-SHA',
  TLS_ECDHE_RSA_WITH_RC4_128_SHA: 'ECDHE-RSA-RC4-SHA',
  TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA: 'ECDHE-RSA-DES-CBC3-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: 'ECDHE-ECDSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: 'ECDHE-RSA-AES128-SHA256',
  // the legacy aliases GetCipherSuite accepts explicitly
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: 'ECDHE-ECDSA-CHACHA20-POLY1305',
});

/** Go enables all three TLS 1.3 suites whatever Config.CipherSuites says; Node's default order. */
export const TLS13_SUITES = ['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256'];

/** The error etcd returns (pkg/tlsutil.GetCipherSuites) for a name Go does not know. */
export class CipherSuiteError extends Error {
  constructor(readonly suite: string) {
    super(`unexpected TLS cipher suite ${goQuote(suite)}`);
    this.name = 'CipherSuiteError';
  }
}

export interface CipherSettings {
  /** for Node's `ciphers` option: the TLS 1.2 suites asked for, then the TLS 1.3 suites. */
  ciphers: string;
  /** 'TLSv1.3' when no TLS 1.2 suite is left (Go: a TLS 1.2 handshake finds no common suite). */
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** names Go knows but this Node's OpenSSL cannot offer (RC4, 3DES): dropped; worth a warning. */
  unsupported: string[];
}

/** Go-name → OpenSSL-name, or undefined when Go's GetCipherSuite would return false. */
export function openSslCipherName(goName: string): string | undefined {
  return Object.prototype.hasOwnProperty.call(GO_TO_OPENSSL_CIPHER, goName) ? GO_TO_OPENSSL_CIPHER[goName] : undefined;
}

/**
 * etcd's tlsutil.GetCipherSuites: every name must be known (first unknown → CipherSuiteError).
 * Returns undefined for an empty list: Node's defaults stay, as Go's do.
 */
export function cipherSettings(goNames: readonly string[]): CipherSettings | undefined {
  if (goNames.length === 0) return undefined;
  const available = new Set(getCiphers().map((c) => c.toLowerCase()));
  const tls12: string[] = [];
  const unsupported: string[] = [];
  for (const name of goNames) {
    const ossl = openSslCipherName(name);
    if (ossl === undefined) throw new CipherSuiteError(name);
    if (ossl.startsWith('TLS_')) continue; // TLS 1.3: always on, as in Go
    if (!available.has(ossl.toLowerCase())) {
      unsupported.push(name);
      continue;
    }
    if (!tls12.includes(ossl)) tls12.push(ossl);
  }
  return {
    ciphers: [...tls12, ...TLS13_SUITES].join(':'),
    minVersion: tls12.length > 0 ? 'TLSv1.2' : 'TLSv1.3',
    unsupported,
  };
}

/** Go's %q for the printable ASCII names we expect; escapes quotes and backslashes. */
export function goQuote(s: string): string {
  return JSON.stringify(s);
}
