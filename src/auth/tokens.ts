// Auth tokens, after etcd 3.4's TokenProvider (auth/simple_token.go, jwt.go, nop.go, options.go).
//
// Shaped for a deterministic, testable server:
//   - time and randomness are injected (now(), randomInt()), so expiry and token prefixes are testable;
//   - `assign` is called from the apply path (etcd proposes Authenticate through the log so every member
//     knows a simple token): it changes provider state synchronously before it returns; only the JWT
//     signature is awaited after that, so the caller may apply the next entry at once;
//   - `info` is async: a JWT is verified by `jose` (WebCrypto, async), and a simple token waits until its
//     log index is applied here (etcd's indexWaiter), through an injected waiter;
//   - the simple-token map is bounded: tokens expire after the TTL (refreshed on use), are swept once a
//     second by an unref'd timer cleared on disable/close, and at most `maxTokens` (default 1,000,000) are
//     kept: beyond that the one closest to expiry is dropped (its client re-authenticates, as on expiry).
import { createPrivateKey, createPublicKey, randomInt as cryptoRandomInt, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { jwtVerify, SignJWT } from 'jose';
import { Errors } from '../errors';

export interface AuthInfo {
  username: string;
  revision: number;
}

/** What etcd passes through the context to assign(): the entry's log index and the proposer's prefix. */
export interface AssignParams {
  index?: number | bigint;
  simpleTokenPrefix?: string;
}

export interface TokenProvider {
  readonly kind: 'simple' | 'jwt' | 'nop';
  /** The token's user and auth revision, or undefined when the token is not (or no longer) valid. */
  info(token: string, revision: number): Promise<AuthInfo | undefined>;
  /** A token for the user (apply path: state changes happen before the returned promise is created). */
  assign(username: string, revision: number, params: AssignParams): Promise<string>;
  enable(): void;
  disable(): void;
  invalidateUser(username: string): void;
  /** 16 random letters for a simple token; '' for the others (etcd's genTokenPrefix). */
  genTokenPrefix(): string;
  /** Stops timers; the provider is unusable afterwards. */
  close(): void;
}

/** Start-up errors for --auth-token, with etcd's words. */
export class AuthOptionError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'AuthOptionError';
  }
}
export const ERR_INVALID_AUTH_OPTS = 'auth: invalid auth options';
export const ERR_INVALID_AUTH_METHOD = 'auth: invalid auth signature method';
export const ERR_MISSING_KEY = 'auth: missing key data';
export const ERR_KEY_MISMATCH = "auth: public and private keys don't match";

export interface TokenProviderDeps {
  /** --auth-token-ttl in seconds (simple tokens); ≤ 0 or absent: etcd's 300. */
  ttlSeconds?: number;
  /** Milliseconds since the epoch. */
  now?: () => number;
  /** A uniform integer in [0, n). */
  randomInt?: (n: number) => number;
  /**
   * etcd's indexWaiter: undefined when the log index is applied here, else a promise that resolves when it
   * is (reject it, e.g. on shutdown, to refuse the token). Absent: every index counts as applied.
   */
  indexWaiter?: (index: bigint) => Promise<void> | undefined;
  /** Reads a key file (tests inject one); default fs.readFileSync. */
  readFile?: (path: string) => Buffer;
  /** Most simple tokens kept at once. */
  maxTokens?: number;
  log?: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

// ---------------------------------------------------------------------------------------------------
// --auth-token option string

/** etcd's decomposeOpts: `type[,k=v]*`; a pair without exactly one '=' or a repeated key is refused. */
export function decomposeOpts(optstr: string): { type: string; opts: Map<string, string> } {
  const parts = optstr.split(',');
  const opts = new Map<string, string>();
  for (let i = 1; i < parts.length; i++) {
    const pair = parts[i].split('=');
    if (pair.length !== 2) throw new AuthOptionError(ERR_INVALID_AUTH_OPTS);
    if (opts.has(pair[0])) throw new AuthOptionError(ERR_INVALID_AUTH_OPTS);
    opts.set(pair[0], pair[1]);
  }
  return { type: parts[0], opts };
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration, in milliseconds. Throws on bad input. */
export function parseGoDuration(s: string): number {
  const orig = s;
  let sign = 1;
  if (s[0] === '-' || s[0] === '+') {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') throw new Error(`time: invalid duration "${orig}"`);
  let total = 0;
  const re = /^(\d*)(?:\.(\d*))?([a-zµμ]+)/;
  while (s.length) {
    const m = re.exec(s);
    if (!m || (m[1] === '' && (m[2] === undefined || m[2] === ''))) throw new Error(`time: invalid duration "${orig}"`);
    const unit = DURATION_UNITS[m[3]];
    if (unit === undefined) {
      if (/^[a-zµμ]+$/.test(m[3])) throw new Error(`time: unknown unit "${m[3]}" in duration "${orig}"`);
      throw new Error(`time: invalid duration "${orig}"`);
    }
    total += Number(`${m[1] || '0'}.${m[2] || '0'}`) * unit;
    s = s.slice(m[0].length);
  }
  return sign * total;
}

/** Builds the provider for --auth-token (etcd's NewTokenProvider). */
export async function newTokenProvider(optstr: string, deps: TokenProviderDeps = {}): Promise<TokenProvider> {
  let parsed: { type: string; opts: Map<string, string> };
  try {
    parsed = decomposeOpts(optstr);
  } catch {
    throw new AuthOptionError(ERR_INVALID_AUTH_OPTS);
  }
  switch (parsed.type) {
    case 'simple':
      deps.log?.('warn', 'simple token is not cryptographically signed');
      return new SimpleTokenProvider(deps);
    case 'jwt':
      return JwtTokenProvider.create(parsed.opts, deps);
    case '':
      return new NopTokenProvider();
    default:
      deps.log?.('warn', 'unknown token type', { type: parsed.type });
      throw new AuthOptionError(ERR_INVALID_AUTH_OPTS);
  }
}

// ---------------------------------------------------------------------------------------------------
// simple

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
const SIMPLE_TOKEN_LENGTH = 16;
/** etcd's simpleTokenTTLDefault. */
export const SIMPLE_TOKEN_TTL_DEFAULT_S = 300;
/** etcd's simpleTokenTTLResolution: how often expired tokens are swept. */
const SWEEP_MS = 1000;
const INT64_MAX = (1n << 63n) - 1n;

/** etcd's simple token: `<16 random letters>.<log index>`, kept in memory, TTL refreshed on every use. */
export class SimpleTokenProvider implements TokenProvider {
  readonly kind = 'simple' as const;
  /** token → user and expiry; Map order is expiry order (a refresh re-inserts at the end). */
  private readonly tokens = new Map<string, { username: string; expiresAt: number }>();
  private enabled = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly randomInt: (n: number) => number;
  private readonly maxTokens: number;

  constructor(private readonly deps: TokenProviderDeps = {}) {
    this.ttlMs = (deps.ttlSeconds !== undefined && deps.ttlSeconds > 0 ? deps.ttlSeconds : SIMPLE_TOKEN_TTL_DEFAULT_S) * 1000;
    this.now = deps.now ?? Date.now;
    this.randomInt = deps.randomInt ?? ((n) => cryptoRandomInt(n));
    this.maxTokens = deps.maxTokens ?? 1_000_000;
  }

  /** Tokens held now (for tests and metrics). */
  get size(): number {
    return this.tokens.size;
  }

  genTokenPrefix(): string {
    let s = '';
    for (let i = 0; i < SIMPLE_TOKEN_LENGTH; i++) s += LETTERS[this.randomInt(LETTERS.length)];
    return s;
  }

  enable(): void {
    if (this.enabled) return;
    this.enabled = true;
    this.timer = setInterval(() => this.sweep(), SWEEP_MS);
    this.timer.unref();
  }

  disable(): void {
    this.enabled = false;
    this.tokens.clear(); // invalidate all tokens
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  close(): void {
    this.disable();
  }

  /** Drops the expired tokens (the front of the map, which is in expiry order). */
  sweep(): void {
    const now = this.now();
    for (const [token, t] of this.tokens) {
      if (!(now > t.expiresAt)) break;
      this.deps.log?.('info', 'deleted a simple token', { 'user-name': t.username, token });
      this.tokens.delete(token);
    }
  }

  assign(username: string, _revision: number, params: AssignParams): Promise<string> {
    const token = `${params.simpleTokenPrefix ?? ''}.${String(params.index ?? 0)}`;
    if (this.enabled) {
      // etcd panics on a token already in use; a replayed entry may give one again, so it replaces it.
      this.tokens.delete(token);
      while (this.tokens.size >= this.maxTokens) {
        const oldest = this.tokens.keys().next().value as string;
        this.tokens.delete(oldest);
      }
      this.tokens.set(token, { username, expiresAt: this.now() + this.ttlMs });
    }
    return Promise.resolve(token);
  }

  async info(token: string, revision: number): Promise<AuthInfo | undefined> {
    const parts = token.split('.');
    if (parts.length !== 2 || !/^[+-]?\d+$/.test(parts[1])) return undefined;
    const index = BigInt(parts[1]);
    if (index < 0n || index > INT64_MAX) return undefined; // Atoi's range; a negative index is never applied
    const wait = this.deps.indexWaiter?.(index);
    if (wait) {
      try {
        await wait;
      } catch {
        return undefined;
      }
    }
    const t = this.tokens.get(token);
    if (!t) return undefined;
    const now = this.now();
    if (now > t.expiresAt) {
      this.tokens.delete(token);
      return undefined;
    }
    this.tokens.delete(token);
    t.expiresAt = now + this.ttlMs;
    this.tokens.set(token, t);
    return { username: t.username, revision };
  }

  invalidateUser(username: string): void {
    if (!this.enabled) return;
    for (const [token, t] of this.tokens) if (t.username === username) this.tokens.delete(token);
  }
}

// ---------------------------------------------------------------------------------------------------
// jwt

/** Methods golang-jwt registers (jwt.GetSigningMethod); etcd builds keys for the first four families. */
const JWT_METHODS: Record<string, 'hmac' | 'rsa' | 'ecdsa' | 'unsupported'> = {
  HS256: 'hmac', HS384: 'hmac', HS512: 'hmac',
  RS256: 'rsa', RS384: 'rsa', RS512: 'rsa',
  PS256: 'rsa', PS384: 'rsa', PS512: 'rsa',
  ES256: 'ecdsa', ES384: 'ecdsa', ES512: 'ecdsa',
  EdDSA: 'unsupported', none: 'unsupported',
};
const GO_METHOD_TYPE: Record<string, string> = { EdDSA: '*jwt.SigningMethodEd25519', none: '*jwt.signingMethodNone' };
const EC_CURVE: Record<string, string> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };
/** etcd's jwt DefaultTTL. */
export const JWT_DEFAULT_TTL_MS = 5 * 60_000;
const KNOWN_JWT_OPTIONS = new Set(['sign-method', 'pub-key', 'priv-key', 'ttl']);

// golang-jwt's key parsing errors (the words etcd reports at start-up).
const ERR_KEY_MUST_BE_PEM = 'invalid key: Key must be a PEM encoded PKCS1 or PKCS8 key';
const ERR_NOT_RSA_PRIVATE = 'key is not a valid RSA private key';
const ERR_NOT_RSA_PUBLIC = 'key is not a valid RSA public key';
const ERR_NOT_EC_PRIVATE = 'key is not a valid ECDSA private key';
const ERR_NOT_EC_PUBLIC = 'key is not a valid ECDSA public key';

/** Go's pem.Decode: the DER bytes of the first PEM block, or undefined. */
function firstPemBlock(pem: Buffer): Buffer | undefined {
  const m = /-----BEGIN [^-\r\n]*-----\r?\n([\s\S]*?)-----END [^-\r\n]*-----/.exec(pem.toString('latin1'));
  if (!m) return undefined;
  // Drop RFC 1421 headers (lines with ':') before the base64 body.
  const body = m[1].split(/\r?\n/).filter((l) => !l.includes(':')).join('');
  return Buffer.from(body, 'base64');
}

/**
 * golang-jwt's Parse{RSA,EC}{Private,Public}KeyFromPEM: the first PEM block's DER, whatever its label;
 * private keys PKCS#1 / SEC 1 or PKCS#8, public keys PKIX or an X.509 certificate.
 */
function loadKey(pem: Buffer, kind: 'private' | 'public', family: 'rsa' | 'ecdsa'): KeyObject {
  const der = firstPemBlock(pem);
  if (!der) throw new AuthOptionError(ERR_KEY_MUST_BE_PEM);
  const wrong = family === 'rsa' ? (kind === 'private' ? ERR_NOT_RSA_PRIVATE : ERR_NOT_RSA_PUBLIC) : kind === 'private' ? ERR_NOT_EC_PRIVATE : ERR_NOT_EC_PUBLIC;
  const attempts: (() => KeyObject)[] =
    kind === 'private'
      ? [() => createPrivateKey({ key: der, format: 'der', type: family === 'rsa' ? 'pkcs1' : 'sec1' }), () => createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })]
      : [() => createPublicKey({ key: der, format: 'der', type: 'spki' }), () => new X509Certificate(der).publicKey];
  for (const attempt of attempts) {
    let key: KeyObject;
    try {
      key = attempt();
    } catch {
      continue;
    }
    if (key.asymmetricKeyType === (family === 'rsa' ? 'rsa' : 'ec')) return key;
    throw new AuthOptionError(wrong);
  }
  throw new AuthOptionError(wrong);
}

/** etcd's JWT provider: claims {exp, revision, username}; verified with the public half of the key. */
export class JwtTokenProvider implements TokenProvider {
  readonly kind = 'jwt' as const;
  private readonly now: () => number;

  private constructor(
    readonly signMethod: string,
    private readonly signKey: KeyObject | Uint8Array | undefined,
    private readonly verifyKey: KeyObject | Uint8Array,
    readonly ttlMs: number,
    private readonly deps: TokenProviderDeps,
  ) {
    this.now = deps.now ?? Date.now;
  }

  /** True when only a public key was given: tokens can be checked, not issued (etcd's verifyOnly). */
  get verifyOnly(): boolean {
    return this.signKey === undefined;
  }

  /** etcd's newTokenProviderJWT over the `k=v` options of --auth-token. */
  static create(opts: Map<string, string>, deps: TokenProviderDeps = {}): JwtTokenProvider {
    const readFile = deps.readFile ?? ((p: string) => readFileSync(p));
    // jwtOptions.ParseWithDefaults: any failure here is ErrInvalidAuthOpts (the cause is logged).
    let ttlMs = JWT_DEFAULT_TTL_MS;
    let pub: Buffer | undefined;
    let priv: Buffer | undefined;
    const method = opts.get('sign-method') ?? '';
    try {
      const ttl = opts.get('ttl') ?? '';
      if (ttl !== '') ttlMs = parseGoDuration(ttl);
      const pubFile = opts.get('pub-key') ?? '';
      if (pubFile !== '') pub = readFile(pubFile);
      const privFile = opts.get('priv-key') ?? '';
      if (privFile !== '') priv = readFile(privFile);
      if (!(method in JWT_METHODS)) throw new AuthOptionError(ERR_INVALID_AUTH_METHOD);
    } catch (err) {
      deps.log?.('error', 'problem loading JWT options', { error: err instanceof Error ? err.message : String(err) });
      throw new AuthOptionError(ERR_INVALID_AUTH_OPTS, err);
    }
    const unknown = [...opts.keys()].filter((k) => !KNOWN_JWT_OPTIONS.has(k));
    if (unknown.length) deps.log?.('warn', 'unknown JWT options', { keys: unknown });

    // jwtOptions.Key
    const family = JWT_METHODS[method];
    if (family === 'unsupported') throw new AuthOptionError(`unsupported signing method: ${GO_METHOD_TYPE[method]}`);
    if (family === 'hmac') {
      if (!priv || priv.length === 0) throw new AuthOptionError(ERR_MISSING_KEY);
      return new JwtTokenProvider(method, priv, priv, ttlMs, deps);
    }
    const privKey = priv && priv.length ? loadKey(priv, 'private', family) : undefined;
    const pubKey = pub && pub.length ? loadKey(pub, 'public', family) : undefined;
    if (!privKey) {
      if (!pubKey) throw new AuthOptionError(ERR_MISSING_KEY);
      checkCurve(method, pubKey);
      return new JwtTokenProvider(method, undefined, pubKey, ttlMs, deps); // verify only
    }
    if (pubKey) {
      // etcd's own test, kept as it is: a mismatch only when every compared part differs.
      const a = createPublicKey(privKey).export({ format: 'jwk' });
      const b = pubKey.export({ format: 'jwk' });
      const mismatch = family === 'rsa' ? a.e !== b.e && a.n !== b.n : a.crv !== b.crv && a.x !== b.x && a.y !== b.y;
      if (mismatch) throw new AuthOptionError(ERR_KEY_MISMATCH);
    }
    checkCurve(method, privKey);
    // As etcd, tokens are verified with the private key's own public half, whatever pub-key says.
    return new JwtTokenProvider(method, privKey, createPublicKey(privKey), ttlMs, deps);
  }

  enable(): void {}
  disable(): void {}
  invalidateUser(): void {}
  close(): void {}
  genTokenPrefix(): string {
    return '';
  }

  assign(username: string, revision: number, _params: AssignParams = {}): Promise<string> {
    if (!this.signKey) return Promise.reject(Errors.authVerifyOnly);
    // golang-jwt marshals MapClaims with sorted keys: exp, revision, username.
    const exp = Math.floor((this.now() + this.ttlMs) / 1000);
    return new SignJWT({ exp, revision, username }).setProtectedHeader({ alg: this.signMethod, typ: 'JWT' }).sign(this.signKey);
  }

  /** The revision is the token's own (a token minted before an auth change is then refused as old). */
  async info(token: string, _revision?: number): Promise<AuthInfo | undefined> {
    try {
      const { payload } = await jwtVerify(token, this.verifyKey, { algorithms: [this.signMethod], currentDate: new Date(this.now()) });
      const { username, revision } = payload as { username?: unknown; revision?: unknown };
      // etcd type-asserts these (and would panic); a token without them is refused here.
      if (typeof username !== 'string' || typeof revision !== 'number' || !(revision >= 0)) return undefined;
      return { username, revision: Math.trunc(revision) };
    } catch (err) {
      this.deps.log?.('warn', 'failed to parse a JWT token', { token, error: err instanceof Error ? err.message : String(err) });
      return undefined;
    }
  }
}

/** ES256/384/512 need P-256/384/521 keys (golang-jwt fails each signature otherwise; refused at start here). */
function checkCurve(method: string, key: KeyObject): void {
  const want = EC_CURVE[method];
  if (!want) return;
  const crv = key.export({ format: 'jwk' }).crv;
  if (crv !== want) throw new AuthOptionError(`key is invalid: ${method} needs a ${want} key, got ${crv}`);
}

// ---------------------------------------------------------------------------------------------------
// nop: --auth-token '' (no tokens; Authenticate fails)

export class NopTokenProvider implements TokenProvider {
  readonly kind = 'nop' as const;
  enable(): void {}
  disable(): void {}
  invalidateUser(): void {}
  close(): void {}
  genTokenPrefix(): string {
    return '';
  }
  info(): Promise<AuthInfo | undefined> {
    return Promise.resolve(undefined);
  }
  assign(): Promise<string> {
    return Promise.reject(Errors.authFailed);
  }
}
