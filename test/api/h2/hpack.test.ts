import { describe, expect, it } from 'vitest';
import { HpackDecoder, HpackError, indexedField, literalField } from '../../../src/api/h2/hpack';

// RFC 7541 Appendix C (the vectors as golang.org/x/net/http2/hpack's tests carry them).
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function decodeAll(d: HpackDecoder, block: Buffer): [string, string][] {
  const out: [string, string][] = [];
  d.decode(block, (n, v) => out.push([n, v]));
  return out;
}

describe('HPACK decoder', () => {
  it('decodes RFC 7541 C.4: requests with Huffman coding, sharing one dynamic table', () => {
    const d = new HpackDecoder();
    expect(decodeAll(d, hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff'))).toEqual([
      [':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'],
    ]);
    expect(decodeAll(d, hex('8286 84be 5886 a8eb 1064 9cbf'))).toEqual([
      [':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache'],
    ]);
    expect(decodeAll(d, hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf'))).toEqual([
      [':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value'],
    ]);
  });

  it('decodes RFC 7541 C.6: responses that evict from a 256-byte table', () => {
    const d = new HpackDecoder(256);
    const date1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
    expect(decodeAll(d, hex(`4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
      2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`))).toEqual([
      [':status', '302'], ['cache-control', 'private'], ['date', date1], ['location', 'https://www.example.com'],
    ]);
    // Index 65 (c1) is only right if ":status 302" was evicted to make room for ":status 307".
    expect(decodeAll(d, hex('4883 640e ffc1 c0bf'))).toEqual([
      [':status', '307'], ['cache-control', 'private'], ['date', date1], ['location', 'https://www.example.com'],
    ]);
    expect(decodeAll(d, hex(`88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
      77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed
      4ee5 b106 3d50 07`))).toEqual([
      [':status', '200'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'],
      ['location', 'https://www.example.com'], ['content-encoding', 'gzip'],
      ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'],
    ]);
  });

  it('reads literal forms without Huffman (C.2.1-C.2.3) and never-indexed fields stay out of the table', () => {
    const d = new HpackDecoder();
    expect(decodeAll(d, hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'))).toEqual([['custom-key', 'custom-header']]);
    expect(decodeAll(d, hex('040c 2f73 616d 706c 652f 7061 7468'))).toEqual([[':path', '/sample/path']]);
    expect(decodeAll(d, hex('1008 7061 7373 776f 7264 0673 6563 7265 74'))).toEqual([['password', 'secret']]);
    // Only custom-key was indexed: 62 is it, 63 does not exist.
    expect(decodeAll(d, hex('be'))).toEqual([['custom-key', 'custom-header']]);
    expect(() => decodeAll(d, hex('bf'))).toThrow(HpackError);
  });

  it('refuses malformed blocks', () => {
    const cases: [string, string][] = [
      ['index 0', '80'],
      ['truncated string', '4005 6162'],
      ['truncated integer', 'ff'],
      ['Huffman padding not all ones', '4081 00'],
      ['Huffman padding longer than 7 bits', '0082 ffff 8161'],
      ['table size update above the setting (4097)', '3fe2 1f'],
    ];
    for (const [name, h] of cases) expect(() => decodeAll(new HpackDecoder(), hex(h)), name).toThrow(HpackError);
  });

  it('honours a dynamic table size update: the table is emptied at size 0', () => {
    const d = new HpackDecoder();
    decodeAll(d, hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'));
    expect(decodeAll(d, hex('20'))).toEqual([]);
    expect(() => decodeAll(d, hex('be'))).toThrow(HpackError);
  });

  it('decodes what its encoder helpers write', () => {
    const block = Buffer.concat([indexedField(':status', '200'), literalField('content-type', 'application/grpc'), literalField('grpc-message', 'x'.repeat(300))]);
    expect(decodeAll(new HpackDecoder(), block)).toEqual([[':status', '200'], ['content-type', 'application/grpc'], ['grpc-message', 'x'.repeat(300)]]);
  });
});
