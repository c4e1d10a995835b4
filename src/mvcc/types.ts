// Plain request/response shapes of the KV service, free of protobuf: the seam between api/ and mvcc/.
import type { KeyValue } from './key-value';

export type { KeyValue } from './key-value';

/** Range end as mvcc sees it: undefined = the single key; empty = every key from key on. */
export type RangeEnd = Buffer | undefined;

export const SortOrder = { NONE: 0, ASCEND: 1, DESCEND: 2 } as const;
export const SortTarget = { KEY: 0, VERSION: 1, CREATE: 2, MOD: 3, VALUE: 4 } as const;

export interface RangeRequest {
  key: Buffer;
  /** As on the wire: empty = single key, "\0" = all keys from key. */
  rangeEnd: Buffer;
  limit: number;
  revision: number;
  sortOrder: number;
  sortTarget: number;
  serializable: boolean;
  keysOnly: boolean;
  countOnly: boolean;
  minModRevision: number;
  maxModRevision: number;
  minCreateRevision: number;
  maxCreateRevision: number;
}

export interface RangeResponse {
  revision: number;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

/** A RangeResponse whose KeyValues are their stored bytes (mvccpb.KeyValue's wire encoding). */
export interface StoredRangeResponse {
  revision: number;
  kvs: Buffer[];
  more: boolean;
  count: number;
}

export interface PutRequest {
  key: Buffer;
  value: Buffer;
  lease: bigint;
  prevKv: boolean;
  ignoreValue: boolean;
  ignoreLease: boolean;
}

export interface PutResponse {
  revision: number;
  prevKv: KeyValue | undefined;
}

export interface DeleteRangeRequest {
  key: Buffer;
  rangeEnd: Buffer;
  prevKv: boolean;
}

export interface DeleteRangeResponse {
  revision: number;
  deleted: number;
  prevKvs: KeyValue[];
}

export const CompareResult = { EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 } as const;
export const CompareTarget = { VERSION: 0, CREATE: 1, MOD: 2, VALUE: 3, LEASE: 4 } as const;

export interface Compare {
  result: number;
  target: number;
  key: Buffer;
  rangeEnd: Buffer;
  /** The operand for VALUE. */
  value: Buffer;
  /** The operand for VERSION, CREATE, MOD and LEASE. */
  number: bigint;
}

export type RequestOp =
  | { range: RangeRequest }
  | { put: PutRequest }
  | { deleteRange: DeleteRangeRequest }
  | { txn: TxnRequest };

export type ResponseOp =
  | { range: RangeResponse }
  | { put: PutResponse }
  | { deleteRange: DeleteRangeResponse }
  | { txn: TxnResponse };

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface TxnResponse {
  revision: number;
  succeeded: boolean;
  responses: ResponseOp[];
}
