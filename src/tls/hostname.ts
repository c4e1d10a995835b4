// Why: etcd (Go 1.19 crypto/x509) decides --*-cert-allowed-hostname and the peer listener's SAN
// check with Certificate.VerifyHostname and its HostnameError texts. Node's checkHost/checkIP use
// OpenSSL's rules (CN fallback, partial wildcards), so Go's matching is reproduced here instead.

import { isIP } from 'node:net';

/** The names a certificate carries, as Go's x509.Certificate exposes them. */
export interface CertNames {
  commonName: string;
  dnsNames: string[];
  /** IP SANs as 16-byte values (IPv4 as v4-mapped), in certificate order. */
  ipAddresses: Uint8Array[];
  hasSanExtension: boolean;
}

/** Go's net.ParseIP into 16 bytes (IPv4 mapped); undefined when not an IP literal. */
export function parseIp(s: string): Uint8Array | undefined {
  const kind = isIP(s);
  if (kind === 4) {
    const out = new Uint8Array(16);
    out[10] = 0xff;
    out[11] = 0xff;
    s.split('.').forEach((p, i) => (out[12 + i] = Number(p)));
    return out;
  }
  if (kind === 6) {
    if (s.includes('%')) return undefined; // Go's ParseIP refuses zones
    let head = s;
    let v4: number[] = [];
    const lastColon = s.lastIndexOf(':');
    if (s.slice(lastColon + 1).includes('.')) {
      v4 = s.slice(lastColon + 1).split('.').map(Number);
      head = s.slice(0, lastColon + 1) + '0:0';
    }
    const [l, r] = head.split('::');
    const left = l ? l.split(':') : [];
    const right = r !== undefined && r !== '' ? r.split(':') : [];
    const groups = head.includes('::')
      ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right]
      : left;
    const out = new Uint8Array(16);
    groups.forEach((g, i) => {
      const v = parseInt(g, 16);
      out[i * 2] = v >> 8;
      out[i * 2 + 1] = v & 0xff;
    });
    if (v4.length === 4) v4.forEach((b, i) => (out[12 + i] = b));
    return out;
  }
  return undefined;
}

/** Bytes of an IP SAN (4 or 16 long) into Go's 16-byte form. */
export function ipFromSanBytes(b: Uint8Array): Uint8Array {
  if (b.length === 16) return b;
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(b.subarray(0, 4), 12);
  return out;
}

function isV4(ip: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (ip[i] !== 0) return false;
  return ip[10] === 0xff && ip[11] === 0xff;
}

/** Go's net.IP.String(): dotted IPv4, RFC 5952 IPv6 (longest run of ≥2 zero groups as ::). */
export function formatIp(ip: Uint8Array): string {
  if (isV4(ip)) return `${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((ip[2 * i] << 8) | ip[2 * i + 1]);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) return g.map((x) => x.toString(16)).join(':');
  const a = g.slice(0, bestStart).map((x) => x.toString(16)).join(':');
  const b = g.slice(bestStart + bestLen).map((x) => x.toString(16)).join(':');
  return `${a}::${b}`;
}

function ipEqual(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false;
  return true;
}

function lowerAscii(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

function validHostname(host: string, isPattern: boolean): boolean {
  if (!isPattern && host.endsWith('.')) host = host.slice(0, -1);
  if (host.length === 0) return false;
  const parts = host.split('.');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (part === '') return false;
    if (isPattern && i === 0 && part === '*') continue;
    for (let j = 0; j < part.length; j++) {
      const c = part[j];
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c === '_') continue;
      if (c === '-' && j !== 0) continue;
      return false;
    }
  }
  return true;
}

function matchExactly(a: string, b: string): boolean {
  if (a === '' || a === '.' || b === '' || b === '.') return false;
  return lowerAscii(a) === lowerAscii(b);
}

export function matchHostnames(pattern: string, host: string): boolean {
  pattern = lowerAscii(pattern);
  host = lowerAscii(host.endsWith('.') ? host.slice(0, -1) : host);
  if (pattern.length === 0 || host.length === 0) return false;
  const pp = pattern.split('.');
  const hp = host.split('.');
  if (pp.length !== hp.length) return false;
  for (let i = 0; i < pp.length; i++) {
    if (i === 0 && pp[i] === '*') continue;
    if (pp[i] !== hp[i]) return false;
  }
  return true;
}

/** Go's HostnameError.Error(). */
export function hostnameErrorText(c: CertNames, host: string): string {
  if (!c.hasSanExtension && matchHostnames(c.commonName, host)) {
    return 'x509: certificate relies on legacy Common Name field, use SANs instead';
  }
  let valid: string;
  if (parseIp(host)) {
    if (c.ipAddresses.length === 0) {
      return `x509: cannot validate certificate for ${host} because it doesn't contain any IP SANs`;
    }
    valid = c.ipAddresses.map(formatIp).join(', ');
  } else {
    valid = c.dnsNames.join(', ');
  }
  if (valid.length === 0) return `x509: certificate is not valid for any names, but wanted to match ${host}`;
  return `x509: certificate is valid for ${valid}, not ${host}`;
}

/** Go's (*x509.Certificate).VerifyHostname: undefined when it matches, else the error text. */
export function verifyHostname(c: CertNames, h: string): string | undefined {
  let candidateIp = h;
  if (h.length >= 3 && h[0] === '[' && h[h.length - 1] === ']') candidateIp = h.slice(1, -1);
  const ip = parseIp(candidateIp);
  if (ip) {
    for (const cand of c.ipAddresses) if (ipEqual(ip, cand)) return undefined;
    return hostnameErrorText(c, candidateIp);
  }
  const name = lowerAscii(h);
  const validName = validHostname(name, false);
  for (const m of c.dnsNames) {
    if (validName && validHostname(m, true)) {
      if (matchHostnames(m, name)) return undefined;
    } else if (matchExactly(m, name)) {
      return undefined;
    }
  }
  return hostnameErrorText(c, h);
}
