import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HpackDecoder, HpackError } from '../../../src/api/h2/hpack';
import { HUFFMAN_CODES, HUFFMAN_LENGTHS, STATIC_TABLE } from '../../../src/api/h2/hpack-tables';
import { fcParams, mutate, mutationArb } from './fuzz-helpers';

// Property-based fuzzing of the HPACK decoder (issue #16). Valid header blocks are written by a reference
// encoder below (every representation of RFC 7541 §6, Huffman or not, with its own model of the dynamic
// table), then checked to round-trip; random and mutated blocks must decode or throw HpackError, nothing
// else, and leave the dynamic table within its size.
// Longer runs: FC_RUNS=100000 npx vitest run test/api/h2/fuzz-hpack.test.ts (FC_SEED / FC_PATH replay a failure).

type Field = [string, string];

// --- reference encoder ---

function int(v: number, prefixBits: number, flags: number): number[] {
  const mask = (1 << prefixBits) - 1;
  if (v < mask) return [flags | v];
  const out = [flags | mask];
  v -= mask;
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

function huffman(bytes: Buffer): Buffer {
  const out: number[] = [];
  let acc = 0;
  let n = 0;
  for (const c of bytes) {
    const code = HUFFMAN_CODES[c];
    const len = HUFFMAN_LENGTHS[c];
    for (let i = len - 1; i >= 0; i--) {
      acc = (acc << 1) | ((code >>> i) & 1);
      if (++n === 8) {
        out.push(acc & 0xff);
        acc = 0;
        n = 0;
      }
    }
  }
  if (n > 0) out.push(((acc << (8 - n)) | ((1 << (8 - n)) - 1)) & 0xff); // padding: the EOS prefix (ones)
  return Buffer.from(out);
}

function str(s: string, huff: boolean): number[] {
  const raw = Buffer.from(s, 'latin1');
  const body = huff ? huffman(raw) : raw;
  return [...int(body.length, 7, huff ? 0x80 : 0), ...body];
}

/** The dynamic table as RFC 7541 §4 describes it, newest first. */
class Table {
  entries: Field[] = [];
  size = 0;
  constructor(public max: number) {}
  add(f: Field): void {
    const s = f[0].length + f[1].length + 32;
    while (this.entries.length && this.size + s > this.max) this.pop();
    if (s > this.max) return;
    this.entries.unshift(f);
    this.size += s;
  }
  resize(max: number): void {
    this.max = max;
    while (this.entries.length && this.size > this.max) this.pop();
  }
  private pop(): void {
    const [n, v] = this.entries.pop()!;
    this.size -= n.length + v.length + 32;
  }
  get(idx: number): Field {
    return idx <= STATIC_TABLE.length ? (STATIC_TABLE[idx - 1] as Field) : this.entries[idx - STATIC_TABLE.length - 1];
  }
}

/** An abstract representation; indexes are picked modulo what exists when it is encoded. */
type Op =
  | { k: 'indexed'; pick: number; dyn: boolean }
  | { k: 'literal'; mode: 'incremental' | 'without' | 'never'; nameIdx: number | null; dyn: boolean; name: string; value: string; hn: boolean; hv: boolean };

const latin1 = (maxLength: number) => fc.uint8Array({ maxLength }).map((a) => Buffer.from(a).toString('latin1'));
const tokenish = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_:.'.split('')), maxLength: 20 });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant('indexed' as const), pick: fc.nat(), dyn: fc.boolean() }),
  fc.record({
    k: fc.constant('literal' as const),
    mode: fc.constantFrom('incremental' as const, 'without' as const, 'never' as const),
    nameIdx: fc.option(fc.nat(), { nil: null }),
    dyn: fc.boolean(),
    name: fc.oneof(tokenish, latin1(40)),
    value: fc.oneof(tokenish, latin1(300)),
    hn: fc.boolean(),
    hv: fc.boolean(),
  }),
);

interface BlockSpec {
  /** Dynamic table size updates at the block's start (RFC 7541 §4.2: at most two). */
  updates: number[];
  ops: Op[];
}

const blockArb = (maxTable: number): fc.Arbitrary<BlockSpec> =>
  fc.record({ updates: fc.array(fc.integer({ min: 0, max: maxTable }), { maxLength: 2 }), ops: fc.array(opArb, { maxLength: 30 }) });

/** Encodes a block against the model table (updating it) and returns the bytes and the fields a decoder must produce. */
function encode(spec: BlockSpec, t: Table): { bytes: Buffer; fields: Field[] } {
  const out: number[] = [];
  const fields: Field[] = [];
  for (const u of spec.updates) {
    out.push(...int(u, 5, 0x20));
    t.resize(u);
  }
  const pickIndex = (pick: number, dyn: boolean) =>
    dyn && t.entries.length ? STATIC_TABLE.length + 1 + (pick % t.entries.length) : 1 + (pick % STATIC_TABLE.length);
  for (const op of spec.ops) {
    if (op.k === 'indexed') {
      const idx = pickIndex(op.pick, op.dyn);
      out.push(...int(idx, 7, 0x80));
      fields.push([...t.get(idx)] as Field);
      continue;
    }
    const [prefixBits, flags] = op.mode === 'incremental' ? [6, 0x40] : op.mode === 'without' ? [4, 0] : [4, 0x10];
    let name = op.name;
    if (op.nameIdx !== null) {
      const idx = pickIndex(op.nameIdx, op.dyn);
      name = t.get(idx)[0];
      out.push(...int(idx, prefixBits, flags));
    } else {
      out.push(...int(0, prefixBits, flags), ...str(name, op.hn));
    }
    out.push(...str(op.value, op.hv));
    fields.push([name, op.value]);
    if (op.mode === 'incremental') t.add([name, op.value]);
  }
  return { bytes: Buffer.from(out), fields };
}

// --- checks ---

interface DecoderState {
  dynamic: Field[];
  dynamicSize: number;
  tableSize: number;
  maxTableSize: number;
}
const state = (d: HpackDecoder) => d as unknown as DecoderState;

/** The dynamic table's accounting is exact and within the size in force, itself within the setting. */
function checkTable(d: HpackDecoder): void {
  const s = state(d);
  const sum = s.dynamic.reduce((n, [a, b]) => n + a.length + b.length + 32, 0);
  expect(s.dynamicSize).toBe(sum);
  expect(s.dynamicSize).toBeLessThanOrEqual(s.tableSize);
  expect(s.tableSize).toBeLessThanOrEqual(s.maxTableSize);
}

/** Decodes; the only exception allowed is HpackError. Returns the fields, or the error. */
function decodeOrHpackError(d: HpackDecoder, block: Buffer): Field[] | HpackError {
  const out: Field[] = [];
  try {
    d.decode(block, (n, v) => {
      expect(typeof n).toBe('string');
      expect(typeof v).toBe('string');
      out.push([n, v]);
    });
  } catch (err) {
    if (err instanceof HpackError) return err;
    throw err; // a TypeError/RangeError/...: the property fails with the input fast-check shrinks to
  }
  // Every representation takes at least one byte.
  expect(out.length).toBeLessThanOrEqual(block.length);
  return out;
}

const tableSizeArb = fc.oneof(fc.constant(4096), fc.integer({ min: 0, max: 4096 }));

describe('HPACK decoder (fuzz)', () => {
  it('valid blocks (all representations, Huffman or not, table size updates) round-trip, one dynamic table across blocks', () => {
    fc.assert(
      fc.property(tableSizeArb.chain((max) => fc.tuple(fc.constant(max), fc.array(blockArb(max), { minLength: 1, maxLength: 6 }))), ([max, blocks]) => {
        const d = new HpackDecoder(max);
        const model = new Table(max);
        for (const spec of blocks) {
          const { bytes, fields } = encode(spec, model);
          const got: Field[] = [];
          d.decode(bytes, (n, v) => got.push([n, v]));
          expect(got).toEqual(fields);
          checkTable(d);
          expect(state(d).dynamic).toEqual(model.entries);
        }
      }),
      fcParams(500),
    );
  });

  it('random bytes: decode completes or throws HpackError, and the table stays within its size', () => {
    fc.assert(
      fc.property(tableSizeArb, fc.array(fc.uint8Array({ maxLength: 200 }), { minLength: 1, maxLength: 4 }), (max, blocks) => {
        const d = new HpackDecoder(max);
        for (const b of blocks) {
          decodeOrHpackError(d, Buffer.from(b));
          checkTable(d);
        }
      }),
      fcParams(2000, 2),
    );
  });

  it('random bytes biased to HPACK prefixes (indexes, long integers, Huffman strings): HpackError or fields, bounded table', () => {
    const byte = fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x80, 0xbe, 0xff, 0x7f, 0x40, 0x3f, 0x20, 0x10, 0x00, 0x8f, 0xe1));
    fc.assert(
      fc.property(tableSizeArb, fc.array(fc.array(byte, { maxLength: 120 }), { minLength: 1, maxLength: 4 }), (max, blocks) => {
        const d = new HpackDecoder(max);
        for (const b of blocks) {
          decodeOrHpackError(d, Buffer.from(b));
          checkTable(d);
        }
      }),
      fcParams(2000, 2),
    );
  });

  it('mutated valid blocks (flipped, truncated, spliced, duplicated bytes): HpackError or fields, bounded table', () => {
    fc.assert(
      fc.property(
        tableSizeArb.chain((max) => fc.tuple(fc.constant(max), fc.array(fc.tuple(blockArb(max), fc.array(mutationArb, { maxLength: 4 })), { minLength: 1, maxLength: 4 }))),
        ([max, blocks]) => {
          const d = new HpackDecoder(max);
          const model = new Table(max);
          for (const [spec, muts] of blocks) {
            const { bytes } = encode(spec, model);
            decodeOrHpackError(d, mutate(bytes, muts));
            checkTable(d);
          }
        },
      ),
      fcParams(1000),
    );
  });

  it('a valid block cut anywhere inside a representation throws HpackError (truncation is detected, never mis-decoded silently)', () => {
    // Cutting between two representations is a valid shorter block; cutting inside one must fail.
    fc.assert(
      fc.property(blockArb(4096), fc.nat(), (spec, cutSeed) => {
        const model = new Table(4096);
        const { bytes } = encode({ updates: [], ops: spec.ops }, model);
        fc.pre(bytes.length > 1);
        const cut = 1 + (cutSeed % (bytes.length - 1));
        // The representation boundaries, from encoding each op alone against the same model.
        const bounds = new Set<number>([0]);
        const t2 = new Table(4096);
        let off = 0;
        for (const op of spec.ops) {
          off += encode({ updates: [], ops: [op] }, t2).bytes.length;
          bounds.add(off);
        }
        const r = decodeOrHpackError(new HpackDecoder(4096), bytes.subarray(0, cut));
        if (bounds.has(cut)) expect(r).not.toBeInstanceOf(HpackError);
        else expect(r).toBeInstanceOf(HpackError);
      }),
      fcParams(1000),
    );
  });

  it('Huffman strings: any latin1 string round-trips; more than 7 bits of padding is refused', () => {
    fc.assert(
      fc.property(latin1(200), fc.boolean(), (s, extraPad) => {
        const enc = huffman(Buffer.from(s, 'latin1'));
        const body = extraPad ? Buffer.concat([enc, Buffer.from([0xff])]) : enc;
        // literal without indexing, new name "x", Huffman value
        const block = Buffer.from([0x00, 0x01, 0x78, ...int(body.length, 7, 0x80), ...body]);
        const r = decodeOrHpackError(new HpackDecoder(), block);
        if (extraPad) expect(r).toBeInstanceOf(HpackError);
        else expect(r).toEqual([['x', s]]);
      }),
      fcParams(1000),
    );
  });

  it('integers of any size (up to 2^53) in an index are refused or resolved, never a RangeError or hang', () => {
    fc.assert(
      fc.property(fc.oneof(fc.nat(), fc.maxSafeNat()), fc.constantFrom(0x80, 0x40, 0x20, 0x00, 0x10), (v, kind) => {
        const prefix = kind === 0x80 ? 7 : kind === 0x40 ? 6 : kind === 0x20 ? 5 : 4;
        const block = Buffer.from([...int(v, prefix, kind), 0x01, 0x61, 0x01, 0x62]);
        const d = new HpackDecoder();
        decodeOrHpackError(d, block);
        checkTable(d);
      }),
      fcParams(1000),
    );
  });

  it('SETTINGS_MAX_HEADER_LIST_SIZE: with a limit, the fields emitted are the longest prefix within it, and the table is the same as without', () => {
    fc.assert(
      fc.property(fc.array(blockArb(4096), { minLength: 1, maxLength: 4 }), fc.array(fc.nat({ max: 3000 }), { minLength: 4, maxLength: 4 }), (blocks, limits) => {
        const limited = new HpackDecoder();
        const model = new Table(4096);
        blocks.forEach((spec, i) => {
          const { bytes, fields } = encode(spec, model);
          const got: Field[] = [];
          const fits = limited.decode(bytes, (n, v) => got.push([n, v]), limits[i]);
          let used = 0;
          const want: Field[] = [];
          for (const f of fields) {
            used += f[0].length + f[1].length + 32;
            if (used <= limits[i]) want.push(f);
          }
          expect(got).toEqual(want);
          expect(fits).toBe(used <= limits[i]);
          // The table follows the peer's encoder whatever was cut.
          expect(state(limited).dynamic).toEqual(model.entries);
          checkTable(limited);
        });
      }),
      fcParams(500),
    );
  });

  it('random bytes with a header list limit: HpackError, or a prefix of what an unlimited decode gives', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat({ max: 5000 }), (raw, limit) => {
        const block = Buffer.from(raw);
        const full = decodeOrHpackError(new HpackDecoder(), block);
        const d = new HpackDecoder();
        const got: Field[] = [];
        let r: boolean | HpackError;
        try {
          r = d.decode(block, (n, v) => got.push([n, v]), limit);
        } catch (err) {
          if (!(err instanceof HpackError)) throw err;
          r = err;
        }
        checkTable(d);
        if (!(full instanceof HpackError)) {
          expect(r).not.toBeInstanceOf(HpackError);
          expect(full.slice(0, got.length)).toEqual(got);
        }
      }),
      fcParams(2000, 2),
    );
  });

  // RFC 7541 §4.2: a dynamic table size update "MUST occur at the beginning of the first header block
  // following the change"; golang.org/x/net/http2/hpack and nghttp2 refuse one after a field representation
  // ("dynamic table size update MUST occur at the beginning of a header block").
  it('a dynamic table size update after a field representation is a decoding error', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 5 }), fc.integer({ min: 0, max: 4096 }), (ops, size) => {
        const { bytes } = encode({ updates: [], ops }, new Table(4096));
        const block = Buffer.concat([bytes, Buffer.from(int(size, 5, 0x20))]);
        expect(decodeOrHpackError(new HpackDecoder(), block)).toBeInstanceOf(HpackError);
      }),
      fcParams(200),
    );
  });
});
