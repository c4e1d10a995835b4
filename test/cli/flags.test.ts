import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FLAGS, parseArgs, parseDuration, UsageError } from '../../src/cli/flags';

const BIN = join(__dirname, '..', '..', 'bin', 'plinth.js');

describe('flags', () => {
  it('takes etcd names in both --flag=value and --flag value forms', () => {
    const cmd = parseArgs([
      '--name=n1', '--data-dir', '/tmp/x', '--listen-client-urls', 'http://127.0.0.1:3000',
      '--max-request-bytes=1024', '--max-txn-ops', '7', '--quota-backend-bytes', '-1', '--backend', 'leveldb',
      '--experimental-compaction-sleep-interval', '1m30s', '--unsafe-no-fsync',
    ]);
    if (cmd.kind !== 'serve') throw new Error('not serve');
    const c = cmd.config;
    expect(c).toMatchObject({ name: 'n1', dataDir: '/tmp/x', maxRequestBytes: 1024, maxTxnOps: 7, quotaBackendBytes: -1, backend: 'leveldb', compactionSleepIntervalMs: 90_000, unsafeNoFsync: true });
    expect(c.listenClientUrls.map(String)).toEqual(['http://127.0.0.1:3000/']);
    // Advertise defaults to what we listen on.
    expect(c.advertiseClientUrls).toEqual(['http://127.0.0.1:3000']);
  });

  it('has etcd defaults', () => {
    const cmd = parseArgs([]);
    if (cmd.kind !== 'serve') throw new Error('not serve');
    expect(cmd.config).toMatchObject({ name: 'default', dataDir: 'data', backend: 'lmdb', maxRequestBytes: 1572864, maxTxnOps: 128, quotaBackendBytes: 0 });
    expect(cmd.config.listenClientUrls.map(String)).toEqual(['http://127.0.0.1:2379/']);
  });

  it('takes the bolt engine and its freelist flags, with etcd 3.4 defaults (array, not synced)', () => {
    const def = parseArgs(['--backend', 'bolt']);
    if (def.kind !== 'serve') throw new Error('not serve');
    expect(def.config).toMatchObject({ backend: 'bolt', backendBboltFreelistType: 'array', backendBboltFreelistSync: false });
    const cmd = parseArgs(['--backend=bolt', '--experimental-backend-bbolt-freelist-type=map', '--backend-bbolt-freelist-sync']);
    if (cmd.kind !== 'serve') throw new Error('not serve');
    expect(cmd.config).toMatchObject({ backend: 'bolt', backendBboltFreelistType: 'map', backendBboltFreelistSync: true });
  });

  it('reads ETCD_* environment variables for etcd flags; a flag wins', () => {
    const cmd = parseArgs(['--name', 'flag'], { ETCD_NAME: 'env', ETCD_MAX_TXN_OPS: '9', PLINTH_BACKEND: 'memory' });
    if (cmd.kind !== 'serve') throw new Error('not serve');
    expect(cmd.config).toMatchObject({ name: 'flag', maxTxnOps: 9, backend: 'memory' });
  });

  it.each([
    [['--no-such-flag'], /unknown flag: --no-such-flag/],
    [['--max-txn-ops', 'many'], /not an integer/],
    [['--backend', 'rocksdb'], /want one of lmdb, leveldb, memory, bolt/],
    [['--experimental-backend-bbolt-freelist-type', 'hashmap'], /want array or map/],
    [['--listen-client-urls', 'nonsense'], /not a URL/],
    [['--listen-client-urls', 'unix://127.0.0.1:2379'], /unix: URLs are not supported/],
    [['--listen-peer-urls', 'unixs://127.0.0.1:2380'], /unixs: URLs are not supported/],
    [['--data-dir'], /needs an argument/],
    [['--experimental-compaction-sleep-interval', '10 parsecs'], /not a duration/],
    [['stray'], /unexpected argument/],
  ])('refuses %j', (argv, msg) => {
    expect(() => parseArgs(argv)).toThrow(UsageError);
    expect(() => parseArgs(argv)).toThrow(msg);
  });

  it('takes https client URLs and etcd\'s client TLS flags', () => {
    const cmd = parseArgs(['--listen-client-urls', 'https://127.0.0.1:2379', '--cert-file', 'c.pem', '--key-file', 'k.pem', '--trusted-ca-file', 'ca.pem',
      '--client-cert-auth', '--client-crl-file', 'crl.pem', '--client-cert-allowed-hostname', 'h', '--cipher-suites', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256']);
    if (cmd.kind !== 'serve') throw new Error('not serve');
    expect(cmd.config.advertiseClientUrls).toEqual(['https://127.0.0.1:2379']);
    expect(cmd.config.clientTls).toMatchObject({
      certFile: 'c.pem', keyFile: 'k.pem', trustedCaFile: 'ca.pem', clientCertAuth: true, crlFile: 'crl.pem', allowedHostname: 'h',
      cipherSuites: ['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'],
    });
    const auto = parseArgs(['--auto-tls'], { ETCD_CLIENT_CERT_AUTH: 'true' });
    if (auto.kind !== 'serve') throw new Error('not serve');
    expect(auto.config.clientTls).toMatchObject({ autoTls: true, clientCertAuth: true });
    const peer = parseArgs(['--listen-peer-urls', 'https://127.0.0.1:2380', '--initial-advertise-peer-urls', 'https://127.0.0.1:2380',
      '--peer-cert-file', 'p.pem', '--peer-key-file', 'pk.pem', '--peer-trusted-ca-file', 'ca.pem', '--peer-client-cert-auth', '--peer-crl-file', 'crl.pem',
      '--peer-cert-allowed-cn', 'member', '--peer-auto-tls', '--experimental-peer-skip-client-san-verification', '--cipher-suites', 'TLS_AES_128_GCM_SHA256']);
    if (peer.kind !== 'serve') throw new Error('not serve');
    expect(peer.config.initialAdvertisePeerUrls).toEqual(['https://127.0.0.1:2380']);
    expect(peer.config.peerTls).toMatchObject({
      certFile: 'p.pem', keyFile: 'pk.pem', trustedCaFile: 'ca.pem', clientCertAuth: true, crlFile: 'crl.pem', allowedCN: 'member',
      autoTls: true, skipClientSanVerify: true, cipherSuites: ['TLS_AES_128_GCM_SHA256'],
    });
    expect(peer.config.clientTls.cipherSuites).toEqual(['TLS_AES_128_GCM_SHA256']);
    // Each parse has its own TLS settings.
    const plain = parseArgs([]);
    if (plain.kind !== 'serve') throw new Error('not serve');
    expect(plain.config.clientTls).toMatchObject({ certFile: '', clientCertAuth: false });
  });

  it('parses Go durations', () => {
    expect(parseDuration('x', '10ms')).toBe(10);
    expect(parseDuration('x', '1h2m3s')).toBe(3_723_000);
    expect(parseDuration('x', '0')).toBe(0);
  });
});

describe('plinth command', () => {
  it('--help lists every flag', () => {
    const r = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(0);
    for (const f of FLAGS) expect(r.stdout).toContain(`--${f.name}`);
  });

  it('exits 2 with a clear message on a bad flag', () => {
    const r = spawnSync(process.execPath, [BIN, '--max-txn-ops=x'], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('invalid value "x" for flag --max-txn-ops');
  });
});

describe('the environment, as etcd reads it', () => {
  it('ignores an empty variable: ETCD_UNSAFE_NO_FSYNC= does not turn fsync off', () => {
    const cmd = parseArgs([], { ETCD_UNSAFE_NO_FSYNC: '', ETCD_LISTEN_CLIENT_URLS: '' });
    if (cmd.kind !== 'serve') throw new Error(cmd.kind);
    expect(cmd.config.unsafeNoFsync).toBe(false);
    expect(cmd.config.listenClientUrls.map((u) => u.href)).toEqual(['http://127.0.0.1:2379/']);
  });

  it('a flag shadows its variable, with etcd 3.4 warning, even a variable that would not parse', () => {
    const cmd = parseArgs(['--heartbeat-interval', '50', '--election-timeout', '500'], { ETCD_HEARTBEAT_INTERVAL: 'x', ETCD_ELECTION_TIMEOUT: '700' });
    if (cmd.kind !== 'serve') throw new Error(cmd.kind);
    expect(cmd.config.heartbeatIntervalMs).toBe(50);
    expect(cmd.config.electionTimeoutMs).toBe(500);
    expect(cmd.warnings).toContain('recognized environment variable ETCD_HEARTBEAT_INTERVAL, but unused: shadowed by corresponding flag');
    expect(() => parseArgs([], { ETCD_HEARTBEAT_INTERVAL: 'x' })).toThrow(UsageError);
  });
});
