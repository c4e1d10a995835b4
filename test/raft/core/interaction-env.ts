// Script-driven interaction tests in the style of etcd-io/raft's testdata (rafttest's
// InteractionEnv): members driven step by step by a small text script, every Ready, delivered
// message and log line printed, compared with the expected output in the script.
//
// Script format (test/raft/core/testdata/*.txt): blocks separated by a blank line; each is one
// command line (lines before it starting with '#' are comments), a '----' line, and the expected
// output (no blank lines). Commands:
//   add-nodes <n> [prevote] [checkquorum] [snapshot=<index>] [max-inflight=<n>] [max-size=<bytes>]
//       members 1..n, bootstrapped as the driver does (ADD_NODE entries at term 1, committed, conf
//       state set); with snapshot=i they start from a snapshot point at (i, term 1) instead
//   add-joining <id>   a member joining the cluster: empty storage, no configuration yet
//   campaign <id> | propose <id> <data> | propose-conf-change <id> v<n>|l<n>|r<n>|u<n>
//   read-index <id> <ctx> | transfer-leader <leader> <to> | report-unreachable <id> <peer>
//   report-snapshot <id> <peer> ok|fail
//   tick <id> <n> | tick-heartbeat <id> | tick-election <id> (ticks the randomized timeout)
//   process-ready <id>... | deliver-msgs <id>... [drop] | stabilize [<id>...]
//   partition <ids>/<ids> (messages between the groups are dropped on delivery) | heal
//   compact <id> <index> (snapshot at index, log compacted to it) | crash <id> | restart <id>
//   raft-log <id> | raft-state | status <id> | log-level none|info|debug
import { decodeConfChange, encodeConfChange } from '../../../src/raft/core/conf-change-codec';
import { MemoryStorage } from '../../../src/raft/core/memory-storage';
import { RawNode } from '../../../src/raft/core/raw-node';
import {
  ConfChangeType, EntryType, NONE, SnapshotStatus,
  type ConfChange, type ConfState, type Message, type NodeId, type Ready,
} from '../../../src/raft/core/types';
import {
  describeEntry, describeHardState, describeMessage, describeSnapshot, isEmptySnap, stateName,
} from '../../../src/raft/core/util';
import { mulberry32 } from './helpers';

export interface ScriptBlock {
  comments: string[];
  command: string;
  expected: string;
  line: number;
}

export function parseScript(text: string): ScriptBlock[] {
  const blocks: ScriptBlock[] = [];
  const lines = text.split('\n');
  let i = 0;
  while (i < lines.length) {
    const comments: string[] = [];
    while (i < lines.length && (lines[i].trim() === '' || lines[i].startsWith('#'))) {
      if (lines[i].startsWith('#')) comments.push(lines[i]);
      else comments.length = 0;
      i++;
    }
    if (i >= lines.length) break;
    const line = i + 1;
    const command = lines[i++];
    if (lines[i] !== '----') throw new Error(`line ${i + 1}: expected ---- after the command ${JSON.stringify(command)}`);
    i++;
    const out: string[] = [];
    while (i < lines.length && lines[i] !== '') out.push(lines[i++]);
    blocks.push({ comments, command, expected: out.join('\n'), line });
  }
  return blocks;
}

export function formatScript(blocks: { comments: string[]; command: string; expected: string }[]): string {
  return blocks.map((b) => [...b.comments, b.command, '----', ...(b.expected ? [b.expected] : [])].join('\n')).join('\n\n') + '\n';
}

type Level = 'none' | 'info' | 'debug';

interface EnvNode {
  id: NodeId;
  rn: RawNode | undefined;
  storage: MemoryStorage;
  confState: ConfState;
  /** What the state machine applied, as etcd's "appender" state machine. */
  applied: string[];
}

export class InteractionEnv {
  private out: string[] = [];
  private indent = '';
  private level: Level = 'info';
  private readonly nodes: EnvNode[] = [];
  private messages: Message[] = [];
  private blocked = new Set<string>();
  private opts = { preVote: false, checkQuorum: false, maxInflight: 256, maxSize: Number.MAX_SAFE_INTEGER };

  private print(line: string): void {
    this.out.push(this.indent + line);
  }

  private readonly logger = (level: 'debug' | 'info' | 'warn', msg: string): void => {
    if (this.level === 'none') return;
    if (level === 'debug' && this.level !== 'debug') return;
    this.print(`${level.toUpperCase()} ${msg}`);
  };

  /** Runs one command; returns its output. */
  run(command: string): string {
    this.out = [];
    const [cmd, ...args] = command.trim().split(/\s+/);
    switch (cmd) {
      case 'log-level':
        this.level = args[0] as Level;
        this.print('ok');
        break;
      case 'add-nodes': this.addNodes(args); break;
      case 'add-joining': this.addJoining(args[0]); break;
      case 'campaign': this.node(args[0]).campaign(); break;
      case 'propose': this.propose(args[0], args.slice(1).join(' ')); break;
      case 'propose-conf-change': this.proposeConfChange(args[0], args[1]); break;
      case 'read-index': this.node(args[0]).readIndex(Buffer.from(args[1])); break;
      case 'transfer-leader': this.node(args[0]).transferLeader(BigInt(args[1])); break;
      case 'report-unreachable': this.node(args[0]).reportUnreachable(BigInt(args[1])); break;
      case 'report-snapshot':
        this.node(args[0]).reportSnapshot(BigInt(args[1]), args[2] === 'ok' ? SnapshotStatus.Finish : SnapshotStatus.Failure);
        break;
      case 'tick': for (let i = 0; i < Number(args[1]); i++) this.node(args[0]).tick(); break;
      case 'tick-heartbeat': this.node(args[0]).tick(); break;
      case 'tick-election': {
        const rn = this.node(args[0]);
        for (let i = rn.raft.randomizedElectionTimeout; i > 0; i--) rn.tick();
        break;
      }
      case 'process-ready':
        for (const id of args) this.withHeader(args.length > 1 ? `> ${id} handling Ready` : undefined, () => this.processReady(this.entry(id)));
        break;
      case 'deliver-msgs': {
        const drop = args.includes('drop');
        for (const id of args.filter((a) => a !== 'drop')) {
          this.withHeader(args.length > (drop ? 2 : 1) ? `> ${id} receiving messages` : undefined, () => this.deliverMsgs(BigInt(id), drop));
        }
        break;
      }
      case 'stabilize': this.stabilize(args); break;
      case 'partition': this.partition(args.join(' ')); break;
      case 'heal':
        this.blocked.clear();
        this.print('ok');
        break;
      case 'compact': this.compact(args[0], Number(args[1])); break;
      case 'crash': this.crash(args[0]); break;
      case 'restart': this.restart(args[0]); break;
      case 'raft-log': this.raftLog(args[0]); break;
      case 'raft-state': this.raftState(); break;
      case 'status': this.status(args[0]); break;
      default: throw new Error(`unknown command ${JSON.stringify(cmd)}`);
    }
    return this.out.join('\n');
  }

  private entry(id: string): EnvNode {
    const n = this.nodes[Number(id) - 1];
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  private node(id: string): RawNode {
    const n = this.entry(id);
    if (!n.rn) throw new Error(`node ${id} is down`);
    return n.rn;
  }

  private withHeader(header: string | undefined, f: () => void): void {
    if (!header) {
      f();
      return;
    }
    this.print(header);
    const saved = this.indent;
    this.indent += '  ';
    try {
      f();
    } finally {
      this.indent = saved;
    }
  }

  private addNodes(args: string[]): void {
    const n = Number(args[0]);
    const opt = (k: string): string | undefined => args.find((a) => a.startsWith(`${k}=`))?.slice(k.length + 1);
    this.opts = {
      preVote: args.includes('prevote'),
      checkQuorum: args.includes('checkquorum'),
      maxInflight: Number(opt('max-inflight') ?? 256),
      maxSize: Number(opt('max-size') ?? Number.MAX_SAFE_INTEGER),
    };
    const snapIndex = opt('snapshot');
    const ids = Array.from({ length: n }, (_, i) => BigInt(this.nodes.length + i + 1));
    for (const id of ids) {
      const storage = new MemoryStorage();
      const confState: ConfState = { voters: ids.slice(), learners: [] };
      if (snapIndex !== undefined) {
        storage.applySnapshot({ metadata: { index: Number(snapIndex), term: 1, confState } });
        storage.setHardState({ term: 1, vote: NONE, commit: Number(snapIndex) });
      } else {
        // The driver's bootstrap of a new cluster.
        storage.applySnapshot({ metadata: { index: 0, term: 0, confState } });
        storage.append(ids.map((nodeId, i) => ({
          index: i + 1, term: 1, type: EntryType.CONF_CHANGE,
          data: encodeConfChange({ id: 0n, type: ConfChangeType.ADD_NODE, nodeId, context: Buffer.alloc(0) }),
        })));
        storage.setHardState({ term: 1, vote: NONE, commit: ids.length });
      }
      const node: EnvNode = { id, rn: undefined, storage, confState, applied: [] };
      this.nodes.push(node);
      this.start(node);
    }
  }

  private addJoining(id: string): void {
    if (Number(id) !== this.nodes.length + 1) throw new Error(`add-joining: the next node id is ${this.nodes.length + 1}`);
    const node: EnvNode = { id: BigInt(id), rn: undefined, storage: new MemoryStorage(), confState: { voters: [], learners: [] }, applied: [] };
    this.nodes.push(node);
    this.start(node);
  }

  private start(n: EnvNode): void {
    n.rn = new RawNode({
      id: n.id,
      electionTick: 10,
      heartbeatTick: 1,
      storage: n.storage,
      applied: n.storage.snapshot().metadata.index,
      maxSizePerMsg: this.opts.maxSize,
      maxCommittedSizePerReady: 0,
      maxInflightMsgs: this.opts.maxInflight,
      maxUncommittedEntriesSize: 0,
      checkQuorum: this.opts.checkQuorum,
      preVote: this.opts.preVote,
      random: mulberry32(Number(n.id)),
      logger: this.logger,
    });
  }

  private propose(id: string, data: string): void {
    try {
      this.node(id).propose(Buffer.from(data));
    } catch (err) {
      this.print((err as Error).message);
    }
  }

  private proposeConfChange(id: string, spec: string): void {
    const types: Record<string, ConfChangeType> = { v: ConfChangeType.ADD_NODE, l: ConfChangeType.ADD_LEARNER_NODE, r: ConfChangeType.REMOVE_NODE, u: ConfChangeType.UPDATE_NODE };
    const cc: ConfChange = { id: 0n, type: types[spec[0]], nodeId: BigInt(spec.slice(1)), context: Buffer.alloc(0) };
    try {
      this.node(id).proposeConfChange(cc);
    } catch (err) {
      this.print((err as Error).message);
    }
  }

  /** The driver's Ready handling: persist, install a snapshot, apply (conf changes too), send, advance. */
  private processReady(n: EnvNode): void {
    const rn = n.rn!;
    const rd = rn.ready();
    for (const line of describeReady(rd)) this.print(line);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    if (rd.entries.length > 0) n.storage.append(rd.entries);
    if (rd.snapshot && !isEmptySnap(rd.snapshot)) {
      n.storage.applySnapshot(rd.snapshot);
      n.confState = rd.snapshot.metadata.confState;
    }
    for (const e of rd.committedEntries) {
      if (e.type === EntryType.CONF_CHANGE) n.confState = rn.applyConfChange(decodeConfChange(e.data));
      else if (e.data.length > 0) n.applied.push(e.data.toString());
    }
    this.messages.push(...rd.messages);
    rn.advance(rd);
  }

  private deliverMsgs(to: NodeId, drop: boolean): number {
    const mine = this.messages.filter((m) => m.to === to);
    this.messages = this.messages.filter((m) => m.to !== to);
    for (const m of mine) {
      const blocked = this.blocked.has(`${m.from}-${m.to}`);
      const node = this.nodes[Number(to) - 1];
      const down = !node?.rn;
      this.print(`${drop || blocked || down ? 'dropped: ' : ''}${describeMessage(m)}`);
      if (drop || blocked || down) continue;
      try {
        node.rn!.step(m);
      } catch (err) {
        this.print((err as Error).message);
      }
    }
    return mine.length;
  }

  private stabilize(args: string[]): void {
    const nodes = args.length > 0 ? args.map((a) => this.entry(a)) : this.nodes;
    for (let round = 0; ; round++) {
      if (round > 1000) throw new Error('stabilize did not converge');
      let done = true;
      for (const n of nodes) {
        if (n.rn && n.rn.hasReady()) {
          done = false;
          this.withHeader(`> ${n.id} handling Ready`, () => this.processReady(n));
        }
      }
      for (const n of nodes) {
        if (this.messages.some((m) => m.to === n.id)) {
          done = false;
          this.withHeader(`> ${n.id} receiving messages`, () => this.deliverMsgs(n.id, false));
        }
      }
      if (done) return;
    }
  }

  private partition(spec: string): void {
    const groups = spec.split('/').map((g) => g.trim().split(/[\s,]+/).filter(Boolean).map(BigInt));
    this.blocked.clear();
    for (const a of groups[0]) for (const b of groups[1]) {
      this.blocked.add(`${a}-${b}`);
      this.blocked.add(`${b}-${a}`);
    }
    this.print('ok');
  }

  private compact(id: string, index: number): void {
    const n = this.entry(id);
    n.storage.createSnapshot(index, n.confState);
    n.storage.compact(index);
    this.raftLog(id);
  }

  private crash(id: string): void {
    const n = this.entry(id);
    n.rn = undefined;
    // The state machine is gone with it (rebuilt by re-applying the log after the restart).
    n.applied = [];
    this.print('ok');
  }

  private restart(id: string): void {
    const n = this.entry(id);
    this.start(n);
  }

  private raftLog(id: string): void {
    const s = this.entry(id).storage;
    const first = s.firstIndex();
    const last = s.lastIndex();
    if (last < first) {
      this.print(`log is empty: first index=${first}, last index=${last}`);
      return;
    }
    for (const e of s.entries(first, last + 1, Number.MAX_SAFE_INTEGER)) this.print(describeEntry(e));
  }

  private raftState(): void {
    for (const n of this.nodes) {
      if (!n.rn) {
        this.print(`${n.id}: down`);
        continue;
      }
      const st = n.rn.status();
      this.print(`${n.id}: ${stateName(st.softState.raftState)} (${n.confState.learners.includes(n.id) ? 'Learner' : n.confState.voters.includes(n.id) ? 'Voter' : 'Non-Voter'}) ${describeHardState(st.hardState)} Lead:${st.softState.lead} Applied:${n.applied.join(',') || '-'}`);
    }
  }

  private status(id: string): void {
    const st = this.node(id).status();
    if (!st.progress) {
      this.print(`${id}: not leader`);
      return;
    }
    const states = ['StateProbe', 'StateReplicate', 'StateSnapshot'];
    for (const [pid, pr] of st.progress) {
      this.print(`${pid}: ${states[pr.state]} match=${pr.match} next=${pr.next}${pr.isLearner ? ' learner' : ''}${pr.recentActive ? '' : ' inactive'}`);
    }
  }
}

/** etcd's DescribeReady, line by line. */
export function describeReady(rd: Ready): string[] {
  const out: string[] = [];
  if (rd.softState) out.push(`Lead:${rd.softState.lead} State:${stateName(rd.softState.raftState)}`);
  if (rd.hardState) out.push(`HardState ${describeHardState(rd.hardState)}`);
  if (rd.readStates.length > 0) out.push(`ReadStates ${rd.readStates.map((r) => `{Index:${r.index} Ctx:${JSON.stringify(r.requestCtx.toString())}}`).join(' ')}`);
  if (rd.entries.length > 0) {
    out.push('Entries:');
    for (const e of rd.entries) out.push(describeEntry(e));
  }
  if (rd.snapshot && !isEmptySnap(rd.snapshot)) out.push(`Snapshot ${describeSnapshot(rd.snapshot)}`);
  if (rd.committedEntries.length > 0) {
    out.push('CommittedEntries:');
    for (const e of rd.committedEntries) out.push(describeEntry(e));
  }
  if (rd.messages.length > 0) {
    out.push('Messages:');
    for (const m of rd.messages) out.push(describeMessage(m));
  }
  return out.length > 0 ? [`Ready MustSync=${rd.mustSync}:`, ...out] : ['<empty Ready>'];
}
