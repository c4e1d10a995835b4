import { HUFFMAN_CODES, HUFFMAN_LENGTHS, STATIC_TABLE } from './hpack-tables';

// HPACK (RFC 7541) as a gRPC server needs it: a full decoder (clients index their headers in the dynamic
// table and Huffman-code them), and an encoder that writes literals only (we never index), which every
// decoder accepts.

export class HpackError extends Error {}

/** Huffman decoding trie: child slots per node; > 0 a node, < 0 a symbol (-(sym + 1)), 0 none. */
const TRIE = buildTrie();

function buildTrie(): Int32Array {
  const slots: number[] = [0, 0];
  for (let sym = 0; sym < 256; sym++) {
    const code = HUFFMAN_CODES[sym];
    const len = HUFFMAN_LENGTHS[sym];
    let node = 0;
    for (let i = len - 1; i >= 0; i--) {
      const bit = (code >>> i) & 1;
      const slot = node * 2 + bit;
      if (i === 0) {
        slots[slot] = -(sym + 1);
      } else {
        if (slots[slot] === 0) {
          slots[slot] = slots.length / 2;
          slots.push(0, 0);
        }
        node = slots[slot];
      }
    }
  }
  return Int32Array.from(slots);
}

let scratch = Buffer.allocUnsafe(256);

function huffmanDecode(src: Buffer, start: number, end: number): string {
  // Huffman codes are at least 5 bits: at most 8/5 output bytes per input byte.
  const max = Math.ceil(((end - start) * 8) / 5);
  if (scratch.length < max) scratch = Buffer.allocUnsafe(max * 2);
  let n = 0;
  let node = 0;
  let bits = 0; // bits read since the last symbol
  let ones = true; // and all of them were 1 (a valid padding is a prefix of EOS)
  for (let i = start; i < end; i++) {
    const byte = src[i];
    for (let b = 7; b >= 0; b--) {
      const bit = (byte >>> b) & 1;
      const next = TRIE[node * 2 + bit];
      bits++;
      if (bit === 0) ones = false;
      if (next < 0) {
        scratch[n++] = -next - 1;
        node = 0;
        bits = 0;
        ones = true;
      } else if (next === 0) {
        throw new HpackError('hpack: invalid Huffman code');
      } else {
        node = next;
      }
    }
  }
  if (bits > 7 || !ones) throw new HpackError('hpack: invalid Huffman padding');
  return scratch.toString('latin1', 0, n);
}

const STATIC_COUNT = STATIC_TABLE.length;

/** Decodes header blocks of one connection (the dynamic table lives as long as the connection). */
export class HpackDecoder {
  /** Newest first. */
  private readonly dynamic: [string, string][] = [];
  private dynamicSize = 0;
  private pos = 0;

  private tableSize: number;

  /** maxTableSize: our SETTINGS_HEADER_TABLE_SIZE (the peer may not use more). */
  constructor(private readonly maxTableSize = 4096) {
    this.tableSize = maxTableSize;
  }

  /**
   * Calls onHeader for each field of the block, in order. Throws HpackError on a malformed block.
   * maxListSize: SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 §6.5.2: names, values and 32 bytes per field). A
   * 1-byte index can name a 4 KB table entry, so a small block can expand a thousandfold: past the limit
   * no more fields are emitted (nor literals decoded), but the block is still walked to the end, as the
   * dynamic table must stay in step with the peer's encoder. Returns false when the list was cut short
   * (as x/net/http2's MetaHeadersFrame.Truncated).
   */
  decode(block: Buffer, onHeader: (name: string, value: string) => void, maxListSize = Infinity): boolean {
    this.pos = 0;
    const end = block.length;
    let room = maxListSize;
    let fields = false; // a field seen in this block
    while (this.pos < end) {
      const b = block[this.pos];
      if ((b & 0xe0) !== 0x20) fields = true;
      if (b & 0x80) {
        const [name, value] = this.entry(this.integer(block, 7));
        if ((room -= name.length + value.length + 32) >= 0) onHeader(name, value);
      } else if (b & 0x40) {
        const idx = this.integer(block, 6);
        const name = idx === 0 ? this.string(block) : this.entry(idx)[0];
        const value = this.string(block);
        this.add(name, value);
        if ((room -= name.length + value.length + 32) >= 0) onHeader(name, value);
      } else if (b & 0x20) {
        // RFC 7541 §4.2: only at the start of a block, before any field.
        if (fields) throw new HpackError('hpack: dynamic table size update after a header field');
        const size = this.integer(block, 5);
        if (size > this.maxTableSize) throw new HpackError('hpack: table size update above the limit');
        this.tableSize = size;
        this.evict(0);
      } else {
        // Literal without indexing (0000) or never indexed (0001): same layout, 4-bit prefix.
        const idx = this.integer(block, 4);
        if (room < 0) {
          // Over the limit already: nothing of this field is kept, so nothing of it is decoded.
          if (idx === 0) this.skipString(block);
          else this.entry(idx);
          this.skipString(block);
          continue;
        }
        const name = idx === 0 ? this.string(block) : this.entry(idx)[0];
        const value = this.string(block);
        if ((room -= name.length + value.length + 32) >= 0) onHeader(name, value);
      }
    }
    return room >= 0;
  }

  private entry(idx: number): readonly [string, string] {
    if (idx >= 1 && idx <= STATIC_COUNT) return STATIC_TABLE[idx - 1];
    const d = this.dynamic[idx - STATIC_COUNT - 1];
    if (!d) throw new HpackError(`hpack: invalid index ${idx}`);
    return d;
  }

  private add(name: string, value: string): void {
    const size = name.length + value.length + 32;
    this.evict(size);
    if (size > this.tableSize) return; // an entry larger than the table empties it and is not added
    this.dynamic.unshift([name, value]);
    this.dynamicSize += size;
  }

  private evict(room: number): void {
    while (this.dynamic.length && this.dynamicSize + room > this.tableSize) {
      const [n, v] = this.dynamic.pop()!;
      this.dynamicSize -= n.length + v.length + 32;
    }
  }

  private integer(buf: Buffer, prefixBits: number): number {
    if (this.pos >= buf.length) throw new HpackError('hpack: truncated integer');
    const mask = (1 << prefixBits) - 1;
    let v = buf[this.pos++] & mask;
    if (v < mask) return v;
    let m = 0;
    for (;;) {
      if (this.pos >= buf.length) throw new HpackError('hpack: truncated integer');
      const b = buf[this.pos++];
      v += (b & 0x7f) * 2 ** m;
      m += 7;
      if (!(b & 0x80)) return v;
      if (m > 28) throw new HpackError('hpack: integer too large');
    }
  }

  private skipString(buf: Buffer): void {
    if (this.pos >= buf.length) throw new HpackError('hpack: truncated string');
    const len = this.integer(buf, 7);
    if (this.pos + len > buf.length) throw new HpackError('hpack: truncated string');
    this.pos += len;
  }

  private string(buf: Buffer): string {
    if (this.pos >= buf.length) throw new HpackError('hpack: truncated string');
    const huffman = (buf[this.pos] & 0x80) !== 0;
    const len = this.integer(buf, 7);
    const start = this.pos;
    const end = start + len;
    if (end > buf.length) throw new HpackError('hpack: truncated string');
    this.pos = end;
    return huffman ? huffmanDecode(buf, start, end) : buf.toString('latin1', start, end);
  }
}

function integerBytes(v: number, prefixBits: number, firstByteFlags: number): number[] {
  const mask = (1 << prefixBits) - 1;
  if (v < mask) return [firstByteFlags | v];
  const out = [firstByteFlags | mask];
  v -= mask;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

function stringBytes(s: string): Buffer {
  const body = Buffer.from(s, 'latin1');
  return Buffer.concat([Buffer.from(integerBytes(body.length, 7, 0)), body]);
}

/** A header field as a literal without indexing (name as a static-table index when it has one). */
export function literalField(name: string, value: string): Buffer {
  const idx = STATIC_TABLE.findIndex(([n]) => n === name) + 1;
  const head = idx > 0 ? Buffer.from(integerBytes(idx, 4, 0)) : Buffer.concat([Buffer.from([0]), stringBytes(name)]);
  return Buffer.concat([head, stringBytes(value)]);
}

/** A header field that is an entry of the static table (name and value), e.g. :status 200. */
export function indexedField(name: string, value: string): Buffer {
  const idx = STATIC_TABLE.findIndex(([n, v]) => n === name && v === value) + 1;
  if (idx === 0) throw new Error(`hpack: ${name}: ${value} is not in the static table`);
  return Buffer.from(integerBytes(idx, 7, 0x80));
}
