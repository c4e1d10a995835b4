// The gateway's JSON mapping in isolation: Go's words for bad input, and the rendering rules (proto
// names, int64 as strings, zero values left out, enum names, Go's string escapes).
import { describe, expect, it } from 'vitest';
import { encodeJsonRequest, gatewayRoot, goBase64, goString, JsonInputError, messageJson, readJson } from '../../../src/api/http/jsonpb';

const type = (n: string) => gatewayRoot().lookupType(n);
const encErr = (t: string, body: string) => {
  try {
    encodeJsonRequest(type(t), readJson(body));
  } catch (err) {
    expect(err).toBeInstanceOf(JsonInputError);
    return (err as Error).message;
  }
  return 'no error';
};

describe('gateway JSON', () => {
  it('decodes base64 as Go does, with its error offsets', () => {
    expect(goBase64('YmFy').toString()).toBe('bar');
    expect(goBase64('YQ==').toString()).toBe('a');
    expect(goBase64('').length).toBe(0);
    expect(() => goBase64('not base64!')).toThrow('illegal base64 data at input byte 3');
    expect(() => goBase64('YQ=')).toThrow('illegal base64 data at input byte 3');
    expect(() => goBase64('YQ')).toThrow('illegal base64 data at input byte 0');
    expect(() => goBase64('YQ==YQ==')).toThrow('illegal base64 data at input byte 4');
  });

  it('words JSON syntax and type errors as Go', () => {
    expect(encErr('etcdserverpb.PutRequest', '{"key":')).toBe('unexpected EOF');
    expect(encErr('etcdserverpb.PutRequest', '{"key" 1}')).toBe("invalid character '1' after object key");
    expect(encErr('etcdserverpb.PutRequest', '{"key":1 2}')).toBe("invalid character '2' after object key:value pair");
    expect(encErr('etcdserverpb.PutRequest', '{"key":tru}')).toBe("invalid character '}' in literal true (expecting 'e')");
    expect(encErr('etcdserverpb.PutRequest', '[1]')).toBe('json: cannot unmarshal array into Go value of type map[string]json.RawMessage');
    expect(encErr('etcdserverpb.PutRequest', '{"key":1}')).toBe('json: cannot unmarshal number into Go value of type []uint8');
    expect(encErr('etcdserverpb.RangeRequest', '{"limit":"x"}')).toBe("invalid character 'x' looking for beginning of value");
    expect(encErr('etcdserverpb.RangeRequest', '{"limit":""}')).toBe('unexpected end of JSON input');
    expect(encErr('etcdserverpb.RangeRequest', '{"limit":1e3}')).toBe('json: cannot unmarshal number 1e3 into Go value of type int64');
    expect(encErr('etcdserverpb.RangeRequest', '{"sort_order":true}')).toBe('json: cannot unmarshal bool into Go value of type etcdserverpb.RangeRequest_SortOrder');
    expect(encErr('etcdserverpb.AlarmRequest', '{"memberID":-1}')).toBe('json: cannot unmarshal number -1 into Go value of type uint64');
    expect(encErr('etcdserverpb.WatchRequest', '{"create_request":{"filters":["NOPE"]}}')).toBe(
      'unknown value "NOPE" for enum etcdserverpb.WatchCreateRequest_FilterType');
  });

  it('keeps 64-bit ids exact both ways', () => {
    const t = type('etcdserverpb.LeaseRevokeRequest');
    const bytes = encodeJsonRequest(t, readJson('{"ID":"18446744073709551615"}'.replace('18446744073709551615', '9223372036854775807')));
    expect(messageJson(t, t.decode(bytes))).toBe('{"ID":"9223372036854775807"}');
    const m = type('etcdserverpb.ResponseHeader');
    const h = m.encode(m.fromObject({ cluster_id: '18446744073709551615', revision: 0 })).finish();
    expect(messageJson(m, m.decode(h))).toBe('{"cluster_id":"18446744073709551615"}');
  });

  it('renders enum names, leaves zero values out and escapes as Go', () => {
    const ev = type('mvccpb.Event');
    const bytes = ev.encode(ev.fromObject({ type: 1, kv: { key: Buffer.from('k'), value: Buffer.alloc(0), mod_revision: 3 } })).finish();
    expect(messageJson(ev, ev.decode(bytes))).toBe('{"type":"DELETE","kv":{"key":"aw==","mod_revision":"3"}}');
    expect(goString('a<b>&"\\\n\t\b\u2028')).toBe('"a\\u003cb\\u003e\\u0026\\"\\\\\\n\\t\\u0008\\u2028"');
  });
});
