import { join } from 'node:path';
import * as protobuf from 'protobufjs';
import { PROTO_DIR, PROTO_FILES } from '../../wire/root';

// JSON <-> protobuf as etcd 3.4's grpc-gateway does it (golang/protobuf 1.3 jsonpb with OrigName: true,
// EmitDefaults: false, enums as names): field names as written in the .proto (snake_case, or etcd's own
// camelCase such as dbSize and ID), int64 as decimal strings, bytes as standard base64, zero values left
// out. Input accepts the proto name or its lowerCamel JSON name, numbers or strings for integers, enum
// names or numbers; unknown fields are ignored. Errors carry Go's words (encoding/json, jsonpb, base64),
// since clients and scripts see them in the gateway's error body.

const PROTOBUFJS_DIR = join(require.resolve('protobufjs/package.json'), '..');

let root: protobuf.Root | undefined;

/** etcd's protos with the field names exactly as declared (the gateway's JSON names). */
export function gatewayRoot(): protobuf.Root {
  if (root) return root;
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) =>
    target.startsWith('google/protobuf/') ? join(PROTOBUFJS_DIR, target) : join(PROTO_DIR, target);
  r.loadSync(PROTO_FILES, { keepCase: true });
  r.resolveAll();
  return (root = r);
}

/** An error in the request body: the gateway answers it with InvalidArgument and this text. */
export class JsonInputError extends Error {}

// ---------------------------------------------------------------------------------------------------
// A JSON reader that keeps numbers as their text (ids exceed 2^53) and words its errors as Go's
// encoding/json decoder does.

export type JsonValue =
  | { t: 'object'; fields: Map<string, JsonValue> }
  | { t: 'array'; items: JsonValue[] }
  | { t: 'string'; v: string }
  | { t: 'number'; raw: string }
  | { t: 'bool'; v: boolean }
  | { t: 'null' };

function quoteChar(c: string): string {
  if (c === "'") return "'\\''";
  if (c === '"') return "'\"'";
  const q = JSON.stringify(c);
  return `'${q.slice(1, -1)}'`;
}

class Reader {
  i = 0;
  constructor(private readonly s: string) {}

  private eof(): never {
    throw new JsonInputError('unexpected EOF');
  }
  private bad(context: string): never {
    throw new JsonInputError(`invalid character ${quoteChar(this.s[this.i])} ${context}`);
  }
  private ws(): void {
    const s = this.s;
    while (this.i < s.length && (s[this.i] === ' ' || s[this.i] === '\t' || s[this.i] === '\n' || s[this.i] === '\r')) this.i++;
  }
  /** Whether only whitespace is left (an empty body decodes to an empty message). */
  atEnd(): boolean {
    this.ws();
    return this.i >= this.s.length;
  }

  value(): JsonValue {
    this.ws();
    const s = this.s;
    if (this.i >= s.length) this.eof();
    const c = s[this.i];
    if (c === '{') return this.object();
    if (c === '[') return this.array();
    if (c === '"') return { t: 'string', v: this.string() };
    if (c === '-' || (c >= '0' && c <= '9')) return { t: 'number', raw: this.number() };
    if (c === 't') return this.literal('true', { t: 'bool', v: true });
    if (c === 'f') return this.literal('false', { t: 'bool', v: false });
    if (c === 'n') return this.literal('null', { t: 'null' });
    this.bad('looking for beginning of value');
  }

  private literal(word: string, v: JsonValue): JsonValue {
    for (let k = 0; k < word.length; k++, this.i++) {
      if (this.i >= this.s.length) this.eof();
      if (this.s[this.i] !== word[k]) this.bad(`in literal ${word} (expecting ${quoteChar(word[k])})`);
    }
    return v;
  }

  private object(): JsonValue {
    const fields = new Map<string, JsonValue>();
    this.i++; // {
    this.ws();
    if (this.i >= this.s.length) this.eof();
    if (this.s[this.i] === '}') {
      this.i++;
      return { t: 'object', fields };
    }
    for (;;) {
      this.ws();
      if (this.i >= this.s.length) this.eof();
      if (this.s[this.i] !== '"') this.bad('looking for beginning of object key string');
      const k = this.string();
      this.ws();
      if (this.i >= this.s.length) this.eof();
      if (this.s[this.i] !== ':') this.bad('after object key');
      this.i++;
      fields.set(k, this.value());
      this.ws();
      if (this.i >= this.s.length) this.eof();
      const c = this.s[this.i];
      if (c === ',') {
        this.i++;
        continue;
      }
      if (c === '}') {
        this.i++;
        return { t: 'object', fields };
      }
      this.bad('after object key:value pair');
    }
  }

  private array(): JsonValue {
    const items: JsonValue[] = [];
    this.i++; // [
    this.ws();
    if (this.i >= this.s.length) this.eof();
    if (this.s[this.i] === ']') {
      this.i++;
      return { t: 'array', items };
    }
    for (;;) {
      items.push(this.value());
      this.ws();
      if (this.i >= this.s.length) this.eof();
      const c = this.s[this.i];
      if (c === ',') {
        this.i++;
        continue;
      }
      if (c === ']') {
        this.i++;
        return { t: 'array', items };
      }
      this.bad('after array element');
    }
  }

  private string(): string {
    const s = this.s;
    const start = ++this.i;
    let out = '';
    let from = start;
    for (;;) {
      if (this.i >= s.length) this.eof();
      const c = s.charCodeAt(this.i);
      if (c === 0x22) {
        out += s.slice(from, this.i);
        this.i++;
        return out;
      }
      if (c < 0x20) this.bad('in string literal');
      if (c === 0x5c) {
        out += s.slice(from, this.i);
        this.i++;
        if (this.i >= s.length) this.eof();
        const e = s[this.i];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e in simple) {
          out += simple[e];
          this.i++;
        } else if (e === 'u') {
          this.i++;
          for (let k = 0; k < 4; k++) {
            if (this.i + k >= s.length) {
              this.i += k;
              this.eof();
            }
            if (!/[0-9a-fA-F]/.test(s[this.i + k])) {
              this.i += k;
              this.bad('in \\u hexadecimal character escape');
            }
          }
          out += String.fromCharCode(parseInt(s.slice(this.i, this.i + 4), 16));
          this.i += 4;
        } else this.bad('in string escape code');
        from = this.i;
        continue;
      }
      this.i++;
    }
  }

  private number(): string {
    const s = this.s;
    const start = this.i;
    const digit = () => this.i < s.length && s[this.i] >= '0' && s[this.i] <= '9';
    if (s[this.i] === '-') {
      this.i++;
      if (this.i >= s.length) this.eof();
      if (!digit()) this.bad('in numeric literal');
    }
    if (s[this.i] === '0') this.i++;
    else while (digit()) this.i++;
    if (this.i < s.length && s[this.i] === '.') {
      this.i++;
      if (this.i >= s.length) this.eof();
      if (!digit()) this.bad('after decimal point in numeric literal');
      while (digit()) this.i++;
    }
    if (this.i < s.length && (s[this.i] === 'e' || s[this.i] === 'E')) {
      this.i++;
      if (this.i < s.length && (s[this.i] === '+' || s[this.i] === '-')) this.i++;
      if (this.i >= s.length) this.eof();
      if (!digit()) this.bad('in exponent of numeric literal');
      while (digit()) this.i++;
    }
    return s.slice(start, this.i);
  }
}

/**
 * Reads the first JSON value of a body as Go's json.Decoder does (what follows it is not read);
 * undefined for an empty body.
 */
export function readJson(text: string): JsonValue | undefined {
  return readJsonPrefix(text)?.[0];
}

/** The first JSON value of text and the index just past it; undefined when only whitespace. */
export function readJsonPrefix(text: string): [JsonValue, number] | undefined {
  const r = new Reader(text);
  if (r.atEnd()) return undefined;
  const v = r.value();
  return [v, r.i];
}

/** Parses a whole string as one JSON value (encoding/json Unmarshal: trailing data is an error). */
function parseWhole(text: string): JsonValue {
  if (text.trim() === '') throw new JsonInputError('unexpected end of JSON input');
  const r = new Reader(text);
  let v: JsonValue;
  try {
    v = r.value();
  } catch (err) {
    if (err instanceof JsonInputError && err.message === 'unexpected EOF') throw new JsonInputError('unexpected end of JSON input');
    throw err;
  }
  if (!r.atEnd()) throw new JsonInputError(`invalid character ${quoteChar(text[r.i])} after top-level value`);
  return v;
}

// ---------------------------------------------------------------------------------------------------
// JSON -> message (jsonpb.Unmarshal)

const kindWord = (v: JsonValue): string => v.t;

function typeError(v: JsonValue, goType: string, withValue = false): JsonInputError {
  const what = withValue && v.t === 'number' ? `number ${v.raw}` : kindWord(v);
  return new JsonInputError(`json: cannot unmarshal ${what} into Go value of type ${goType}`);
}

/** Go's name of an enum type as gogo/golang protobuf register it: pkg.Outer_Inner. */
function goEnumName(e: protobuf.Enum): string {
  const names: string[] = [e.name];
  let p = e.parent;
  while (p && p instanceof protobuf.Type) {
    names.unshift(p.name);
    p = p.parent;
  }
  const pkg = p && p.fullName ? p.fullName.replace(/^\./, '') : '';
  return `${pkg ? pkg + '.' : ''}${names.join('_')}`;
}

const INT_RANGES: Record<string, [bigint, bigint, string]> = {
  int64: [-(1n << 63n), (1n << 63n) - 1n, 'int64'],
  sint64: [-(1n << 63n), (1n << 63n) - 1n, 'int64'],
  sfixed64: [-(1n << 63n), (1n << 63n) - 1n, 'int64'],
  uint64: [0n, (1n << 64n) - 1n, 'uint64'],
  fixed64: [0n, (1n << 64n) - 1n, 'uint64'],
  int32: [-(1n << 31n), (1n << 31n) - 1n, 'int32'],
  sint32: [-(1n << 31n), (1n << 31n) - 1n, 'int32'],
  sfixed32: [-(1n << 31n), (1n << 31n) - 1n, 'int32'],
  uint32: [0n, (1n << 32n) - 1n, 'uint32'],
  fixed32: [0n, (1n << 32n) - 1n, 'uint32'],
};

/** json.Unmarshal of a number into a Go integer type. */
function goInt(v: JsonValue, type: string, goType: string, [lo, hi]: [bigint, bigint, string]): bigint {
  if (v.t !== 'number') throw typeError(v, goType);
  if (!/^-?\d+$/.test(v.raw)) throw typeError(v, goType, true);
  const n = BigInt(v.raw);
  if (n < lo || n > hi) throw typeError(v, goType, true);
  void type;
  return n;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_MAP = new Int16Array(256).fill(-1);
for (let k = 0; k < 64; k++) B64_MAP[B64.charCodeAt(k)] = k;

/** base64.StdEncoding.Decode with Go's CorruptInputError offsets. */
export function goBase64(s: string): Buffer {
  const src = Buffer.from(s, 'utf8');
  const corrupt = (at: number) => new JsonInputError(`illegal base64 data at input byte ${at}`);
  const out: number[] = [];
  let si = 0;
  const nl = (c: number) => c === 0x0a || c === 0x0d;
  while (si < src.length) {
    const q: number[] = [];
    let dlen = 4;
    let j = 0;
    for (; j < 4; j++) {
      if (si === src.length) {
        if (j === 0) return Buffer.from(out);
        throw corrupt(si - j);
      }
      const c = src[si++];
      const d = B64_MAP[c];
      if (d >= 0) {
        q[j] = d;
        continue;
      }
      if (nl(c)) {
        j--;
        continue;
      }
      if (c !== 0x3d) throw corrupt(si - 1);
      // padding
      if (j < 2) throw corrupt(si - 1);
      if (j === 2) {
        while (si < src.length && nl(src[si])) si++;
        if (si === src.length) throw corrupt(src.length);
        if (src[si] !== 0x3d) throw corrupt(si - 1);
        si++;
      }
      while (si < src.length && nl(src[si])) si++;
      if (si < src.length) throw corrupt(si);
      dlen = j;
      break;
    }
    const val = ((q[0] ?? 0) << 18) | ((q[1] ?? 0) << 12) | ((q[2] ?? 0) << 6) | (q[3] ?? 0);
    if (dlen >= 2) out.push((val >> 16) & 0xff);
    if (dlen >= 3) out.push((val >> 8) & 0xff);
    if (dlen >= 4) out.push(val & 0xff);
    if (dlen < 4) break;
  }
  return Buffer.from(out);
}

function camel(name: string): string {
  return name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The value of one (non-repeated) field from its JSON. */
function fieldValue(f: protobuf.Field, v: JsonValue): unknown {
  const rt = f.resolvedType;
  if (rt instanceof protobuf.Type) return messageFromJson(rt, v);
  if (rt instanceof protobuf.Enum) {
    const goName = goEnumName(rt);
    if (v.t === 'string') {
      const n = rt.values[v.v];
      if (n === undefined) throw new JsonInputError(`unknown value ${JSON.stringify(v.v)} for enum ${goName}`);
      return n;
    }
    return Number(goInt(v, 'int32', goName, INT_RANGES.int32));
  }
  const range = INT_RANGES[f.type];
  if (range) {
    let nv = v;
    // jsonpb: a quoted number is read as the number inside the quotes.
    if (v.t === 'string') nv = parseWhole(v.v);
    const n = goInt(nv, f.type, range[2], range);
    return range[2].endsWith('64') ? n.toString() : Number(n);
  }
  switch (f.type) {
    case 'bool':
      if (v.t !== 'bool') throw typeError(v, 'bool');
      return v.v;
    case 'string':
      if (v.t !== 'string') throw typeError(v, 'string');
      return v.v;
    case 'bytes':
      if (v.t !== 'string') throw typeError(v, '[]uint8');
      return goBase64(v.v);
    case 'double':
    case 'float': {
      let nv = v;
      if (v.t === 'string') nv = parseWhole(v.v);
      if (nv.t !== 'number') throw typeError(nv, f.type === 'float' ? 'float32' : 'float64');
      return Number(nv.raw);
    }
  }
  throw new JsonInputError(`unsupported field type ${f.type}`);
}

/** A plain object for type.fromObject from the JSON of one message (jsonpb.Unmarshal). */
export function messageFromJson(type: protobuf.Type, v: JsonValue): Record<string, unknown> {
  if (v.t === 'null') return {};
  if (v.t !== 'object') throw typeError(v, 'map[string]json.RawMessage');
  const out: Record<string, unknown> = {};
  for (const f of type.fieldsArray) {
    let jv = v.fields.get(f.name);
    if (jv === undefined) jv = v.fields.get(camel(f.name));
    if (jv === undefined || jv.t === 'null') continue;
    if (f.repeated) {
      if (jv.t !== 'array') throw typeError(jv, '[]json.RawMessage');
      out[f.name] = jv.items.map((it) => (it.t === 'null' && f.resolvedType instanceof protobuf.Type ? {} : fieldValue(f, it)));
    } else out[f.name] = fieldValue(f, jv);
  }
  return out;
}

/** Encodes a request body (already read as JSON; undefined = empty body) into the message's bytes. */
export function encodeJsonRequest(type: protobuf.Type, body: JsonValue | undefined): Buffer {
  const obj = body === undefined ? {} : messageFromJson(type, body);
  return Buffer.from(type.encode(type.fromObject(obj)).finish());
}

// ---------------------------------------------------------------------------------------------------
// message -> JSON (jsonpb.Marshal, OrigName, no defaults, enums as names)

/** A JSON string as Go's encoding/json writes it (HTML-safe escapes, \u00XX for other controls). */
export function goString(s: string): string {
  let out = '"';
  let from = 0;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    let esc: string | undefined;
    if (c < 0x20 || c === 0x22 || c === 0x5c || c === 0x3c || c === 0x3e || c === 0x26 || c === 0x2028 || c === 0x2029) {
      esc = c === 0x22 ? '\\"' : c === 0x5c ? '\\\\' : c === 0x0a ? '\\n' : c === 0x0d ? '\\r' : c === 0x09 ? '\\t' : `\\u${c.toString(16).padStart(4, '0')}`;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      // A lone surrogate is invalid UTF-8 in Go: written as U+FFFD.
      const pair = c <= 0xdbff && k + 1 < s.length && s.charCodeAt(k + 1) >= 0xdc00 && s.charCodeAt(k + 1) <= 0xdfff;
      if (pair) {
        k++;
        continue;
      }
      esc = '\ufffd';
    }
    if (esc !== undefined) {
      out += s.slice(from, k) + esc;
      from = k + 1;
    }
  }
  return out + s.slice(from) + '"';
}

function longString(v: unknown, unsigned: boolean): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return unsigned && v < 0 ? (BigInt(v) + (1n << 64n)).toString() : String(v);
  const l = v as { low: number; high: number };
  let n = (BigInt(l.high >>> 0) << 32n) | BigInt(l.low >>> 0);
  if (!unsigned && n >= 1n << 63n) n -= 1n << 64n;
  return n.toString();
}

function isZero(f: protobuf.Field, v: unknown): boolean {
  if (v === null || v === undefined) return true;
  if (f.resolvedType instanceof protobuf.Type) return false;
  if (typeof v === 'number') return v === 0;
  if (typeof v === 'boolean') return !v;
  if (typeof v === 'string') return v === '';
  // protobufjs decodes an empty bytes field as [] (not a Buffer)
  if (v instanceof Uint8Array || Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object' && 'low' in (v as object)) {
    const l = v as protobuf.Long;
    return l.low === 0 && l.high === 0;
  }
  return false;
}

const UNSIGNED_64 = new Set(['uint64', 'fixed64']);
const LONG_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

function scalarJson(f: protobuf.Field, v: unknown): string {
  const rt = f.resolvedType;
  if (rt instanceof protobuf.Type) return messageJson(rt, v as protobuf.Message);
  if (rt instanceof protobuf.Enum) {
    const name = rt.valuesById[v as number];
    return name !== undefined ? goString(name) : String(v);
  }
  if (LONG_TYPES.has(f.type)) return `"${longString(v, UNSIGNED_64.has(f.type))}"`;
  if (f.type === 'bytes') return goString(Buffer.from(v as Uint8Array).toString('base64'));
  if (f.type === 'string') return goString(v as string);
  if (f.type === 'bool') return v ? 'true' : 'false';
  return String(v);
}

/** The gateway's JSON of a decoded message. */
export function messageJson(type: protobuf.Type, msg: protobuf.Message | Record<string, unknown>): string {
  const m = msg as Record<string, unknown>;
  const parts: string[] = [];
  for (const f of type.fieldsArray) {
    const v = m[f.name];
    if (f.repeated) {
      const arr = v as unknown[] | undefined;
      if (!arr || arr.length === 0) continue;
      parts.push(`${goString(f.name)}:[${arr.map((x) => scalarJson(f, x)).join(',')}]`);
      continue;
    }
    // A oneof member is written when it is the one set, whatever its value (jsonpb checks the wrapper).
    const inOneof = f.partOf !== null && f.partOf !== undefined && f.partOf.oneof.length > 0;
    if (inOneof) {
      if (!Object.prototype.hasOwnProperty.call(m, f.name) || v === null || v === undefined) continue;
    } else if (isZero(f, v)) continue;
    parts.push(`${goString(f.name)}:${scalarJson(f, v)}`);
  }
  return `{${parts.join(',')}}`;
}

/** Decodes a response's bytes and renders the gateway's JSON. */
export function responseJson(type: protobuf.Type, bytes: Uint8Array): string {
  return messageJson(type, type.decode(bytes));
}
