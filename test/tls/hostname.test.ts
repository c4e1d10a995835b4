// Go's VerifyHostname / HostnameError and etcd's peer SAN check, as reproduced in src/tls/hostname.ts.
import { describe, expect, it } from 'vitest';
import { formatIp, parseIp, verifyHostname, type CertNames } from '../../src/tls/hostname';
import { checkCertSan } from '../../src/tls/peer-check';
import { goSerialHex } from '../../src/tls';

function names(over: Partial<CertNames>): CertNames {
  return { commonName: '', dnsNames: [], ipAddresses: [], hasSanExtension: true, ...over };
}

describe('IP parsing and printing as Go', () => {
  it('round-trips', () => {
    expect(formatIp(parseIp('127.0.0.1')!)).toBe('127.0.0.1');
    expect(formatIp(parseIp('2001:DB8:0:0:0:0:0:1')!)).toBe('2001:db8::1');
    expect(formatIp(parseIp('::1')!)).toBe('::1');
    expect(formatIp(parseIp('::ffff:10.0.0.1')!)).toBe('10.0.0.1');
    expect(formatIp(parseIp('1:0:0:2:0:0:0:3')!)).toBe('1:0:0:2::3');
    expect(parseIp('localhost')).toBeUndefined();
  });
});

describe('VerifyHostname', () => {
  const c = names({ commonName: 'root', dnsNames: ['*.example.com', 'host.local'], ipAddresses: [parseIp('10.0.0.1')!] });
  it('matches IPs only against IP SANs, names against DNS SANs with a whole-label left wildcard', () => {
    expect(verifyHostname(c, '10.0.0.1')).toBeUndefined();
    expect(verifyHostname(c, '[10.0.0.1]')).toBeUndefined();
    expect(verifyHostname(c, 'a.example.com')).toBeUndefined();
    expect(verifyHostname(c, 'A.EXAMPLE.COM.')).toBeUndefined();
    expect(verifyHostname(c, 'a.b.example.com')).toBe('x509: certificate is valid for *.example.com, host.local, not a.b.example.com');
    expect(verifyHostname(c, 'root')).toBe('x509: certificate is valid for *.example.com, host.local, not root');
    expect(verifyHostname(c, '10.0.0.2')).toBe('x509: certificate is valid for 10.0.0.1, not 10.0.0.2');
    expect(verifyHostname(names({ dnsNames: ['x'] }), '10.0.0.2')).toBe(
      "x509: cannot validate certificate for 10.0.0.2 because it doesn't contain any IP SANs",
    );
    expect(verifyHostname(names({ commonName: 'root', hasSanExtension: false }), 'root')).toBe(
      'x509: certificate relies on legacy Common Name field, use SANs instead',
    );
  });
});

describe('peer SAN check (checkCertSAN)', () => {
  it('no SANs: nothing to check; IP SAN match; mismatch with IPs only', async () => {
    await expect(checkCertSan(names({}), '127.0.0.1')).resolves.toBeUndefined();
    await expect(checkCertSan(names({ ipAddresses: [parseIp('127.0.0.1')!] }), '127.0.0.1')).resolves.toBeUndefined();
    await expect(checkCertSan(names({ ipAddresses: [parseIp('10.0.0.9')!] }), '127.0.0.1')).rejects.toThrow(
      'x509: certificate is valid for 10.0.0.9, not 127.0.0.1',
    );
  });
  it('DNS SANs: a forward lookup of the name that gives the address passes; others fail with etcd\'s text', async () => {
    await expect(checkCertSan(names({ dnsNames: ['localhost'] }), '127.0.0.1')).resolves.toBeUndefined();
    await expect(checkCertSan(names({ dnsNames: ['nonexistent.invalid'] }), '127.0.0.1')).rejects.toThrow(
      /^tls: "127\.0\.0\.1" does not match any of DNSNames \["nonexistent\.invalid"\]/,
    );
  });
});

describe('serial printing (%x of the serial bytes)', () => {
  it('is minimal bytes, lowercase', () => {
    expect(goSerialHex(0xff01n)).toBe('ff01');
    expect(goSerialHex(0x1ff01n)).toBe('01ff01');
    expect(goSerialHex(0n)).toBe('');
  });
});
