import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AuthOptionError,
  decomposeOpts,
  ERR_INVALID_AUTH_OPTS,
  ERR_KEY_MISMATCH,
  ERR_MISSING_KEY,
  JwtTokenProvider,
  newTokenProvider,
  parseGoDuration,
  SimpleTokenProvider,
  type TokenProvider,
} from '../../src/auth/tokens';
import { Errors } from '../../src/errors';

// Tokens as etcd 3.4's simple_token.go, jwt.go and options.go, with time and randomness injected.

const providers: TokenProvider[] = [];
afterEach(() => providers.splice(0).forEach((p) => p.close()));

describe('--auth-token options', () => {
  it('decomposes as etcd: one "=" per pair, no repeats', () => {
    expect(decomposeOpts('simple')).toEqual({ type: 'simple', opts: new Map() });
    expect(decomposeOpts('jwt,sign-method=RS256,ttl=5m')).toEqual({ type: 'jwt', opts: new Map([['sign-method', 'RS256'], ['ttl', '5m']]) });
    for (const bad of ['jwt,sign-method', 'jwt,a=b=c', 'jwt,ttl=1s,ttl=2s', 'jwt,']) expect(() => decomposeOpts(bad)).toThrow(ERR_INVALID_AUTH_OPTS);
  });

  it('parses Go durations', () => {
    expect(parseGoDuration('5m')).toBe(300_000);
    expect(parseGoDuration('1h30m')).toBe(5_400_000);
    expect(parseGoDuration('1.5s')).toBe(1500);
    expect(parseGoDuration('100ms')).toBe(100);
    expect(parseGoDuration('0')).toBe(0);
    for (const bad of ['', 'forever', '5', '1x', '.s']) expect(() => parseGoDuration(bad)).toThrow();
  });

  it('builds simple, nop and refuses unknown types', async () => {
    const s = await newTokenProvider('simple');
    providers.push(s);
    expect(s.kind).toBe('simple');
    const nop = await newTokenProvider('');
    expect(nop.kind).toBe('nop');
    await expect(nop.assign('u', 1, {})).rejects.toBe(Errors.authFailed);
    expect(await nop.info('x', 1)).toBeUndefined();
    await expect(newTokenProvider('magic')).rejects.toThrow(ERR_INVALID_AUTH_OPTS);
  });
});

describe('simple tokens', () => {
  let clock = 0;
  const letters = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'];

  function simple(extra: Partial<ConstructorParameters<typeof SimpleTokenProvider>[0]> = {}) {
    clock = 1_000_000;
    let n = 0;
    const p = new SimpleTokenProvider({ now: () => clock, randomInt: (m) => n++ % m, ttlSeconds: 300, ...extra });
    providers.push(p);
    return p;
  }

  it('makes 16-letter prefixes from the injected random source', () => {
    const p = simple();
    expect(p.genTokenPrefix()).toBe(letters.slice(0, 16).join(''));
    expect(p.genTokenPrefix()).toBe(letters.slice(16, 32).join(''));
    expect(new SimpleTokenProvider().genTokenPrefix()).toMatch(/^[a-zA-Z]{16}$/);
  });

  it('is "<prefix>.<index>", valid for the TTL, refreshed on every use (TestSimpleTokenAssign)', async () => {
    const p = simple();
    p.enable();
    const token = await p.assign('user1', 5, { index: 42, simpleTokenPrefix: 'dummy' });
    expect(token).toBe('dummy.42');
    expect(await p.info(token, 7)).toEqual({ username: 'user1', revision: 7 }); // the store's revision, not the token's
    clock += 299_000;
    expect(await p.info(token, 7)).toBeDefined(); // refreshed: 300 s more from now
    clock += 300_000;
    expect(await p.info(token, 7)).toBeDefined();
    clock += 300_001;
    expect(await p.info(token, 7)).toBeUndefined();
    expect(p.size).toBe(0);
  });

  it('sweeps expired tokens in expiry order, keeping used ones', async () => {
    const p = simple();
    p.enable();
    const a = await p.assign('a', 1, { index: 1, simpleTokenPrefix: 'x' });
    clock += 100_000;
    await p.assign('b', 1, { index: 2, simpleTokenPrefix: 'x' });
    clock += 100_000;
    await p.info(a, 1); // a now expires after b
    clock += 250_000; // b: 350 s old, a: 250 s since its last use
    p.sweep();
    expect(p.size).toBe(1);
    expect(await p.info(a, 1)).toBeDefined();
  });

  it('refuses malformed tokens and waits for the index to be applied', async () => {
    let applied = 10n;
    const waiting: (() => void)[] = [];
    const p = simple({ indexWaiter: (i) => (i <= applied ? undefined : new Promise<void>((r) => waiting.push(r))) });
    p.enable();
    await p.assign('u', 1, { index: 12, simpleTokenPrefix: 'abc' });
    for (const bad of ['abc', 'abc.12.1', 'abc.x', 'abc.-1', 'abc.99999999999999999999', '']) expect(await p.info(bad, 1)).toBeUndefined();
    let got: unknown = 'pending';
    const pending = p.info('abc.12', 1).then((r) => (got = r));
    await new Promise((r) => setTimeout(r, 5));
    expect(got).toBe('pending');
    applied = 12n;
    waiting.forEach((r) => r());
    await pending;
    expect(got).toEqual({ username: 'u', revision: 1 });
  });

  it('keeps nothing while disabled; disable drops all, invalidateUser one user\'s (TestSimpleTokenDisabled)', async () => {
    const p = simple();
    const t = await p.assign('u', 1, { index: 1, simpleTokenPrefix: 'a' });
    expect(await p.info(t, 1)).toBeUndefined();
    p.enable();
    await p.assign('u', 1, { index: 1, simpleTokenPrefix: 'a' });
    await p.assign('u', 1, { index: 2, simpleTokenPrefix: 'a' });
    const v = await p.assign('v', 1, { index: 3, simpleTokenPrefix: 'a' });
    p.invalidateUser('u');
    expect(p.size).toBe(1);
    expect(await p.info(v, 1)).toBeDefined();
    p.disable();
    expect(await p.info(v, 1)).toBeUndefined();
  });

  it('is bounded: beyond maxTokens the one closest to expiry goes', async () => {
    const p = simple({ maxTokens: 3 });
    p.enable();
    const tokens = [];
    for (let i = 1; i <= 5; i++) tokens.push(await p.assign('u', 1, { index: i, simpleTokenPrefix: 'p' }));
    expect(p.size).toBe(3);
    expect(await p.info(tokens[0], 1)).toBeUndefined();
    expect(await p.info(tokens[4], 1)).toBeDefined();
  });

  it('uses an unref\'d timer, cleared on close', () => {
    const p = simple();
    p.enable();
    const timer = (p as unknown as { timer: NodeJS.Timeout }).timer;
    expect(timer.hasRef()).toBe(false);
    p.close();
    expect((p as unknown as { timer?: NodeJS.Timeout }).timer).toBeUndefined();
  });
});

describe('JWT tokens', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsa2 = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const files: Record<string, Buffer> = {
    'rsa.key': Buffer.from(rsa.privateKey.export({ format: 'pem', type: 'pkcs1' }) as string),
    'rsa8.key': Buffer.from(rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string),
    'rsa.pub': Buffer.from(rsa.publicKey.export({ format: 'pem', type: 'spki' }) as string),
    'rsa2.pub': Buffer.from(rsa2.publicKey.export({ format: 'pem', type: 'spki' }) as string),
    'ec.key': Buffer.from(ec.privateKey.export({ format: 'pem', type: 'sec1' }) as string),
    'ec.pub': Buffer.from(ec.publicKey.export({ format: 'pem', type: 'spki' }) as string),
    'ec384.key': Buffer.from(ec384.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string),
    'ec384.pub': Buffer.from(ec384.publicKey.export({ format: 'pem', type: 'spki' }) as string),
    'hmac.key': Buffer.from('a shared secret of some length'),
  };
  const readFile = (p: string) => {
    const f = files[p];
    if (!f) throw Object.assign(new Error(`open ${p}: no such file or directory`), { code: 'ENOENT' });
    return f;
  };
  let clock = 1_700_000_000_000;
  const deps = { readFile, now: () => clock };
  const make = async (opt: string) => {
    const p = await newTokenProvider(opt, deps);
    providers.push(p);
    return p;
  };

  for (const [method, key, pub] of [
    ['RS256', 'rsa.key', 'rsa.pub'],
    ['RS384', 'rsa8.key', 'rsa.pub'],
    ['PS256', 'rsa.key', 'rsa.pub'],
    ['ES256', 'ec.key', 'ec.pub'],
    ['ES384', 'ec384.key', 'ec384.pub'],
    ['HS256', 'hmac.key', ''],
  ] as const) {
    it(`signs and verifies ${method}: claims username, revision, exp (TestJWTInfo)`, async () => {
      const p = await make(`jwt,pub-key=${pub},priv-key=${key},sign-method=${method},ttl=1m`);
      expect(p.kind).toBe('jwt');
      expect(p.genTokenPrefix()).toBe('');
      const token = await p.assign('root', 3, {});
      expect(decodeProtectedHeader(token)).toEqual({ alg: method, typ: 'JWT' });
      const claims = decodeJwt(token);
      expect(Object.keys(claims)).toEqual(['exp', 'revision', 'username']);
      expect(claims).toEqual({ exp: Math.floor(clock / 1000) + 60, revision: 3, username: 'root' });
      expect(await p.info(token, 99)).toEqual({ username: 'root', revision: 3 }); // the token's revision
      clock += 59_000;
      expect(await p.info(token, 99)).toBeDefined();
      clock += 1_000; // now == exp: expired, as golang-jwt
      expect(await p.info(token, 99)).toBeUndefined();
      clock -= 60_000;
    });
  }

  it('defaults the TTL to 5 minutes', async () => {
    const p = (await make('jwt,priv-key=rsa.key,sign-method=RS256')) as JwtTokenProvider;
    expect(p.ttlMs).toBe(300_000);
  });

  it('refuses forged, tampered, re-signed, wrong-algorithm and malformed tokens', async () => {
    const p = await make('jwt,priv-key=rsa.key,sign-method=RS256');
    const good = await p.assign('alice', 2, {});
    const [h, body, sig] = good.split('.');
    const forgedBody = Buffer.from(JSON.stringify({ exp: Math.floor(clock / 1000) + 60, revision: 2, username: 'root' })).toString('base64url');
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const bad = [
      `${h}.${forgedBody}.${sig}`, // claims changed, signature kept
      await new SignJWT({ exp: Math.floor(clock / 1000) + 60, revision: 2, username: 'root' }).setProtectedHeader({ alg: 'RS256' }).sign(other.privateKey),
      await new SignJWT({ exp: Math.floor(clock / 1000) + 60, revision: 2, username: 'root' }).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(files['rsa.pub'])),
      `${Buffer.from('{"alg":"none"}').toString('base64url')}.${body}.`,
      await new SignJWT({ exp: Math.floor(clock / 1000) + 60, username: 'root' }).setProtectedHeader({ alg: 'RS256' }).sign(rsa.privateKey), // no revision
      'not.a.jwt',
      'garbage',
      '',
    ];
    for (const t of bad) expect(await p.info(t, 1)).toBeUndefined();
    expect(await p.info(good, 1)).toEqual({ username: 'alice', revision: 2 });
  });

  it('verifies only with just a public key; signing is refused with etcd\'s error', async () => {
    const p = (await make('jwt,pub-key=rsa.pub,sign-method=RS256')) as JwtTokenProvider;
    expect(p.verifyOnly).toBe(true);
    await expect(p.assign('u', 1, {})).rejects.toBe(Errors.authVerifyOnly);
    const signer = await make('jwt,priv-key=rsa.key,sign-method=RS256');
    expect(await p.info(await signer.assign('u', 4, {}), 0)).toEqual({ username: 'u', revision: 4 });
  });

  it('refuses bad options with etcd\'s errors (TestJWTBad)', async () => {
    const cases: [string, string | RegExp][] = [
      ['jwt', ERR_INVALID_AUTH_OPTS], // no sign method
      ['jwt,sign-method=invalid', ERR_INVALID_AUTH_OPTS],
      ['jwt,sign-method=RS256', ERR_MISSING_KEY],
      ['jwt,sign-method=RS256,ttl=forever', ERR_INVALID_AUTH_OPTS],
      ['jwt,sign-method=RS256,pub-key=rsa.key,priv-key=rsa.key', 'key is not a valid RSA public key'],
      ['jwt,sign-method=RS256,pub-key=rsa.pub,priv-key=rsa.pub', 'key is not a valid RSA private key'],
      ['jwt,sign-method=HS256', ERR_MISSING_KEY],
      ['jwt,sign-method=HS256,pub-key=rsa.pub', ERR_MISSING_KEY],
      ['jwt,sign-method=HS256,pub-key=missing-file', ERR_INVALID_AUTH_OPTS],
      ['jwt,sign-method=HS256,priv-key=missing-file', ERR_INVALID_AUTH_OPTS],
      ['jwt,sign-method=ES256', ERR_MISSING_KEY],
      ['jwt,sign-method=ES256,pub-key=ec.key,priv-key=ec.key', 'key is not a valid ECDSA public key'],
      ['jwt,sign-method=ES256,pub-key=ec.pub,priv-key=ec.pub', 'key is not a valid ECDSA private key'],
      ['jwt,sign-method=ES256,priv-key=rsa.key', 'key is not a valid ECDSA private key'],
      ['jwt,sign-method=ES256,priv-key=hmac.key', /PEM encoded/],
      ['jwt,sign-method=ES256,priv-key=ec384.key', /key is invalid/],
      ['jwt,sign-method=EdDSA,priv-key=ec.key', 'unsupported signing method: *jwt.SigningMethodEd25519'],
      ['jwt,sign-method=none', 'unsupported signing method: *jwt.signingMethodNone'],
    ];
    for (const [opt, err] of cases) {
      const got = await newTokenProvider(opt, deps).then(
        (p) => (p.close(), undefined),
        (e: unknown) => e,
      );
      expect(got, opt).toBeInstanceOf(AuthOptionError);
      if (typeof err === 'string') expect((got as Error).message, opt).toBe(err);
      else expect((got as Error).message, opt).toMatch(err);
    }
  });

  it('keeps etcd\'s key-mismatch test: refused only when every compared part differs', async () => {
    // Same exponent (65537), different modulus: etcd accepts it.
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    files['other.pub'] = Buffer.from(other.publicKey.export({ format: 'pem', type: 'spki' }) as string);
    await make('jwt,sign-method=RS256,pub-key=other.pub,priv-key=rsa.key');
    // Exponent and modulus both differ: refused.
    await expect(newTokenProvider('jwt,sign-method=RS256,pub-key=rsa2.pub,priv-key=rsa.key', deps)).rejects.toThrow(ERR_KEY_MISMATCH);
  });
});
