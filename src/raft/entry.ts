// The log entry and hard state types live with the raft core (core/types.ts); re-exported here for the
// WAL and the server, which know them by this path.
export { EntryType, type Entry, type HardState } from './core/types';
