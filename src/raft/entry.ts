/** A raft log entry: what the WAL stores and the applier applies, in index order. */
export interface Entry {
  index: number;
  term: number;
  type: EntryType;
  data: Buffer;
}

export const EntryType = {
  /** A client request (etcd's InternalRaftRequest bytes). */
  NORMAL: 0,
  /** A no-op a new leader appends to commit its term (no data). */
  EMPTY: 1,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/** Raft's persistent state besides the log. */
export interface HardState {
  term: number;
  vote: bigint;
  commit: number;
}
