import * as protobuf from 'protobufjs';
import { etcdRoot } from './root';

// A strict pass over a request's protobuf bytes before decoding, as Go's decoder is strict: truncated
// fields and wrong wire types are refused with the words Go's protobuf uses ("unexpected EOF",
// "proto: wrong wireType = 2 for field Revision"), where protobufjs would decode garbage or say
// something else. One pass over the bytes, no allocation.

interface FieldRule {
  /** Wire types accepted for the field (a repeated scalar may also come packed). */
  wires: number;
  goName: string;
  message: MessageRules | undefined;
}
type MessageRules = Map<number, FieldRule>;

const WIRE_OF: Record<string, number> = {
  double: 1, fixed64: 1, sfixed64: 1, float: 5, fixed32: 5, sfixed32: 5,
  int32: 0, int64: 0, uint32: 0, uint64: 0, sint32: 0, sint64: 0, bool: 0,
  string: 2, bytes: 2,
};

const rulesCache = new Map<string, MessageRules>();

/** Go's field name: protobufjs's camelCase with a capital first letter (range_end → RangeEnd). */
const goName = (camel: string) => camel[0].toUpperCase() + camel.slice(1);

/** Rules for a message type by full name (e.g. "etcdserverpb.PutRequest"). */
export function messageRules(fullName: string): MessageRules {
  const cached = rulesCache.get(fullName);
  if (cached) return cached;
  const type = etcdRoot().lookupType(fullName);
  const rules: MessageRules = new Map();
  rulesCache.set(fullName, rules); // before recursing: messages may nest themselves (TxnRequest)
  for (const f of type.fieldsArray) {
    const rt = f.resolvedType;
    let wires: number;
    let message: MessageRules | undefined;
    if (rt instanceof protobuf.Type) {
      wires = 1 << 2;
      message = messageRules(rt.fullName.replace(/^\./, ''));
    } else if (rt instanceof protobuf.Enum) {
      wires = 1 << 0;
    } else {
      wires = 1 << WIRE_OF[f.type];
    }
    if (f.repeated && !message && WIRE_OF[f.type] !== 2) wires |= 1 << 2; // packed
    rules.set(f.id, { wires, goName: goName(f.name), message });
  }
  return rules;
}

/** Returns why buf is not a valid message of these rules, or undefined if it is. */
export function checkWire(rules: MessageRules, buf: Buffer, start = 0, end = buf.length, depth = 0): string | undefined {
  if (depth > 100) return 'proto: exceeded maximum recursion depth';
  let pos = start;
  while (pos < end) {
    // tag
    let tag = 0;
    let shift = 0;
    let b: number;
    do {
      if (pos >= end) return 'unexpected EOF';
      b = buf[pos++];
      tag += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (shift > 35) return 'proto: integer overflow';
    } while (b & 0x80);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === 0) return 'proto: illegal tag 0 (wire type ' + wire + ')';
    const rule = rules.get(field);
    if (rule && !(rule.wires & (1 << wire))) return `proto: wrong wireType = ${wire} for field ${rule.goName}`;
    switch (wire) {
      case 0: {
        let n = 0;
        do {
          if (pos >= end) return 'unexpected EOF';
          b = buf[pos++];
          if (++n > 10) return 'proto: integer overflow';
        } while (b & 0x80);
        break;
      }
      case 1:
        pos += 8;
        if (pos > end) return 'unexpected EOF';
        break;
      case 5:
        pos += 4;
        if (pos > end) return 'unexpected EOF';
        break;
      case 2: {
        let len = 0;
        shift = 0;
        do {
          if (pos >= end) return 'unexpected EOF';
          b = buf[pos++];
          len += (b & 0x7f) * 2 ** shift;
          shift += 7;
          if (shift > 63) return 'proto: integer overflow';
        } while (b & 0x80);
        if (pos + len > end) return 'unexpected EOF';
        if (rule?.message) {
          const bad = checkWire(rule.message, buf, pos, pos + len, depth + 1);
          if (bad) return bad;
        }
        pos += len;
        break;
      }
      default:
        return `proto: illegal wireType ${wire}`;
    }
  }
  return undefined;
}

/** Full name of a method's request type, e.g. ("etcdserverpb.KV", "Put") → "etcdserverpb.PutRequest". */
export function requestTypeName(service: string, method: string): string {
  const m = etcdRoot().lookupService(service).methods[method];
  m.resolve();
  return m.resolvedRequestType!.fullName.replace(/^\./, '');
}
