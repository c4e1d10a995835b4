// Message handling per role (etcd-io/raft 3.4's stepLeader, stepCandidate, stepFollower and the
// handlers for appends, heartbeats and snapshots). Raft.step has already dealt with the message's
// term, elections and votes.
import { decodeConfChange } from './conf-change-codec';
import { VoteResult, majorityVoteResult } from './progress';
import { CampaignType, releasePendingReadIndexMessages, sendMsgReadIndexResponse, type Raft } from './raft';
import { EntryType, ErrProposalDropped, MessageType, NONE, ProgressState, StateType, type Entry, type Message } from './types';
import { messageTypeName, newMessage } from './util';

const hex = (id: bigint): string => id.toString(16);

export function stepLeader(r: Raft, m: Message): void {
  // These need no progress for m.from.
  switch (m.type) {
    case MessageType.MsgBeat:
      r.bcastHeartbeat();
      return;
    case MessageType.MsgCheckQuorum: {
      // The leader always sees itself as active (if it is still in the configuration).
      const self = r.prs.progress.get(r.id);
      if (self) self.recentActive = true;
      if (!r.prs.quorumActive()) {
        r.warn?.(`${hex(r.id)} stepped down to follower since quorum is not active`);
        r.becomeFollower(r.term, NONE);
      }
      // Everyone but ourselves inactive, for the next round.
      r.prs.visit((id, pr) => {
        if (id !== r.id) pr.recentActive = false;
      });
      return;
    }
    case MessageType.MsgProp:
      stepLeaderProposal(r, m);
      return;
    case MessageType.MsgReadIndex:
      // Until this leader has committed in its term its commit index may be behind what earlier
      // leaders committed: hold the request until then.
      if (!r.committedEntryInCurrentTerm()) {
        r.holdReadIndex(m);
        return;
      }
      sendMsgReadIndexResponse(r, m);
      return;
  }

  // The rest need a progress for m.from.
  const pr = r.prs.progress.get(m.from);
  if (!pr) {
    r.debug?.(`${hex(r.id)} no progress available for ${hex(m.from)}`);
    return;
  }
  switch (m.type) {
    case MessageType.MsgAppResp:
      pr.recentActive = true;
      if (m.reject) {
        r.debug?.(`${hex(r.id)} received MsgAppResp(MsgApp was rejected, lastindex: ${m.rejectHint}) from ${hex(m.from)} for index ${m.index}`);
        if (pr.maybeDecrTo(m.index, m.rejectHint)) {
          r.debug?.(`${hex(r.id)} decreased progress of ${hex(m.from)} to [${pr}]`);
          if (pr.state === ProgressState.Replicate) pr.becomeProbe();
          r.sendAppend(m.from);
        }
      } else {
        const oldPaused = pr.isPaused();
        if (pr.maybeUpdate(m.index)) {
          if (pr.state === ProgressState.Probe) {
            pr.becomeReplicate();
          } else if (pr.state === ProgressState.Snapshot && pr.match >= pr.pendingSnapshot) {
            // Caught up past the snapshot: back to replicating, through probe (which accounts for
            // the snapshot) so the status is right at once.
            r.debug?.(`${hex(r.id)} recovered from needing snapshot, resumed sending replication messages to ${hex(m.from)} [${pr}]`);
            pr.becomeProbe();
            pr.becomeReplicate();
          } else if (pr.state === ProgressState.Replicate) {
            pr.inflights.freeLE(m.index);
          }
          if (r.maybeCommit()) {
            // Committed in this term: held reads can be answered.
            releasePendingReadIndexMessages(r);
            r.bcastAppend();
          } else if (oldPaused) {
            // It was paused, so it may lack the latest commit index.
            r.sendAppend(m.from);
          }
          // Flow control may allow several messages now (probe to replicate, or several freed).
          while (r.maybeSendAppend(m.from, false)) { /* send as many as allowed */ }
          // A leader transfer waits for the target to catch up.
          if (m.from === r.leadTransferee && pr.match === r.raftLog.lastIndex()) {
            r.info?.(`${hex(r.id)} sent MsgTimeoutNow to ${hex(m.from)} after received MsgAppResp`);
            r.sendTimeoutNow(m.from);
          }
        }
      }
      return;
    case MessageType.MsgHeartbeatResp: {
      pr.recentActive = true;
      pr.probeSent = false;
      // Free one slot of a full window so replication can make progress.
      if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
      if (pr.match < r.raftLog.lastIndex()) r.sendAppend(m.from);
      if (!m.context || m.context.length === 0) return;
      const acks = r.readOnly.recvAck(m.from, m.context);
      if (!acks || majorityVoteResult(r.prs.voters, acks) !== VoteResult.Won) return;
      for (const rs of r.readOnly.advance(m)) r.responseToReadIndexReq(rs.req, rs.index);
      return;
    }
    case MessageType.MsgSnapStatus:
      if (pr.state !== ProgressState.Snapshot) return;
      if (!m.reject) {
        pr.becomeProbe();
        r.debug?.(`${hex(r.id)} snapshot succeeded, resumed sending replication messages to ${hex(m.from)} [${pr}]`);
      } else {
        // Order matters: forget the snapshot first, or the probe would start after it.
        pr.pendingSnapshot = 0;
        pr.becomeProbe();
        r.debug?.(`${hex(r.id)} snapshot failed, resumed sending replication messages to ${hex(m.from)} [${pr}]`);
      }
      // After success wait for the follower's MsgAppResp; after failure, for a heartbeat interval.
      pr.probeSent = true;
      return;
    case MessageType.MsgUnreachable:
      // In optimistic replication an unreachable follower has most likely lost a MsgApp.
      if (pr.state === ProgressState.Replicate) pr.becomeProbe();
      r.debug?.(`${hex(r.id)} failed to send message to ${hex(m.from)} because it is unreachable [${pr}]`);
      return;
    case MessageType.MsgTransferLeader: {
      if (pr.isLearner) {
        r.debug?.(`${hex(r.id)} is learner. Ignored transferring leadership`);
        return;
      }
      const leadTransferee = m.from;
      const last = r.leadTransferee;
      if (last !== NONE) {
        if (last === leadTransferee) {
          r.info?.(`${hex(r.id)} [term ${r.term}] transfer leadership to ${hex(leadTransferee)} is in progress, ignores request to same node ${hex(leadTransferee)}`);
          return;
        }
        r.abortLeaderTransfer();
        r.info?.(`${hex(r.id)} [term ${r.term}] abort previous transferring leadership to ${hex(last)}`);
      }
      if (leadTransferee === r.id) {
        r.debug?.(`${hex(r.id)} is already leader. Ignored transferring leadership to self`);
        return;
      }
      r.info?.(`${hex(r.id)} [term ${r.term}] starts to transfer leadership to ${hex(leadTransferee)}`);
      // The transfer must finish within an election timeout.
      r.electionElapsed = 0;
      r.leadTransferee = leadTransferee;
      if (pr.match === r.raftLog.lastIndex()) {
        r.sendTimeoutNow(leadTransferee);
        r.info?.(`${hex(r.id)} sends MsgTimeoutNow to ${hex(leadTransferee)} immediately as ${hex(leadTransferee)} already has up-to-date log`);
      } else {
        r.sendAppend(leadTransferee);
      }
      return;
    }
  }
}

/** At most this many proposals, and bytes of entry data, are held during a leader transfer. */
export const MAX_HELD_PROPOSALS = 4096;
export const MAX_HELD_PROPOSAL_BYTES = 64 * 1024 * 1024;

/**
 * Proposals held during a leader transfer go where they can be taken now: to the new leader once this
 * member follows it, or into this leader's log if the transfer was abandoned. Without a leader (an
 * election under way) they wait; their proposers' timeouts bound that.
 */
export function releaseHeldProposals(r: Raft): void {
  if (r.state === StateType.Leader) {
    // A transfer under way, or a leader removed from the configuration (it takes no proposals, but the
    // member it hands over to will): keep them.
    if (r.leadTransferee !== NONE || !r.selfProgress) return;
  } else if (r.lead === NONE) {
    return;
  }
  const held = r.heldProposals;
  r.heldProposals = [];
  r.heldProposalBytes = 0;
  for (const m of held) {
    if (r.state === StateType.Leader) {
      try {
        stepLeaderProposal(r, m);
      } catch {
        // Removed meanwhile, or over the uncommitted limit: dropped, as raft drops proposals.
      }
    } else {
      r.send({ ...m, to: r.lead, term: 0 });
    }
  }
}

function stepLeaderProposal(r: Raft, m: Message): void {
  if (m.entries.length === 0) {
    r.warn?.(`${hex(r.id)} stepped empty MsgProp from ${hex(m.from)}; dropping it`);
    throw ErrProposalDropped;
  }
  // Removed from the configuration while leader: no new proposals.
  if (!r.selfProgress) throw ErrProposalDropped;
  if (r.leadTransferee !== NONE) {
    // Held for the new leader (within bounds) rather than dropped: never appended here, so forwarding
    // it later cannot make it apply twice.
    const bytes = m.entries.reduce((n, e) => n + e.data.length, 0);
    if (r.heldProposals.length < MAX_HELD_PROPOSALS && r.heldProposalBytes + bytes <= MAX_HELD_PROPOSAL_BYTES) {
      if (r.heldProposals.length === 0) r.heldProposalTicks = 0;
      r.heldProposals.push(m);
      r.heldProposalBytes += bytes;
      return;
    }
    r.debug?.(`${hex(r.id)} [term ${r.term}] transfer leadership to ${hex(r.leadTransferee)} is in progress; dropping proposal`);
    throw ErrProposalDropped;
  }
  let ents = m.entries;
  for (let i = 0; i < ents.length; i++) {
    const e = ents[i];
    if (e.type !== EntryType.CONF_CHANGE) continue;
    let refused = '';
    try {
      decodeConfChange(e.data);
      if (r.pendingConfIndex > r.raftLog.applied) {
        refused = `possible unapplied conf change at index ${r.pendingConfIndex} (applied to ${r.raftLog.applied})`;
      }
    } catch (err) {
      refused = `undecodable conf change: ${(err as Error).message}`;
    }
    if (refused !== '') {
      r.info?.(`${hex(r.id)} ignoring conf change at index ${r.raftLog.lastIndex() + i + 1}: ${refused}`);
      // Replaced by an empty entry, as etcd does (the proposer learns nothing applies).
      if (ents === m.entries) ents = ents.slice();
      const empty: Entry = { index: 0, term: 0, type: EntryType.NORMAL, data: Buffer.alloc(0) };
      ents[i] = empty;
    } else {
      r.pendingConfIndex = r.raftLog.lastIndex() + i + 1;
    }
  }
  if (!r.appendEntry(ents)) throw ErrProposalDropped;
  r.bcastAppend();
}

/** Shared by Candidate and PreCandidate: they differ in which vote answers they count. */
export function stepCandidate(r: Raft, m: Message): void {
  // Only answers to our own candidacy: as a candidate, stale pre-vote answers of this term may arrive.
  const myVoteRespType = r.state === StateType.PreCandidate ? MessageType.MsgPreVoteResp : MessageType.MsgVoteResp;
  switch (m.type) {
    case MessageType.MsgProp:
      r.info?.(`${hex(r.id)} no leader at term ${r.term}; dropping proposal`);
      throw ErrProposalDropped;
    case MessageType.MsgApp:
      r.becomeFollower(m.term, m.from); // always m.term === r.term
      handleAppendEntries(r, m);
      return;
    case MessageType.MsgHeartbeat:
      r.becomeFollower(m.term, m.from);
      handleHeartbeat(r, m);
      return;
    case MessageType.MsgSnap:
      r.becomeFollower(m.term, m.from);
      handleSnapshot(r, m);
      return;
    case myVoteRespType: {
      const res = r.poll(m.from, m.type, !m.reject);
      if (res === VoteResult.Won) {
        if (r.state === StateType.PreCandidate) {
          r.campaign(CampaignType.Election);
        } else {
          r.becomeLeader();
          r.bcastAppend();
        }
      } else if (res === VoteResult.Lost) {
        // A pre-vote answer carries the pre-candidate's future term; stay at ours.
        r.becomeFollower(r.term, NONE);
      }
      return;
    }
    case MessageType.MsgTimeoutNow:
      r.debug?.(`${hex(r.id)} [term ${r.term} state ${r.state}] ignored MsgTimeoutNow from ${hex(m.from)}`);
      return;
  }
}

/**
 * Forwarded messages (proposals, reads, transfer requests) are sent on as new messages from this
 * member (term stamped by send), as etcd does.
 */
export function stepFollower(r: Raft, m: Message): void {
  switch (m.type) {
    case MessageType.MsgProp:
      if (r.lead === NONE) {
        r.info?.(`${hex(r.id)} no leader at term ${r.term}; dropping proposal`);
        throw ErrProposalDropped;
      }
      r.send({ ...m, to: r.lead, term: 0 });
      return;
    case MessageType.MsgApp:
      r.electionElapsed = 0;
      r.lead = m.from;
      handleAppendEntries(r, m);
      return;
    case MessageType.MsgHeartbeat:
      r.electionElapsed = 0;
      r.lead = m.from;
      handleHeartbeat(r, m);
      return;
    case MessageType.MsgSnap:
      r.electionElapsed = 0;
      r.lead = m.from;
      handleSnapshot(r, m);
      return;
    case MessageType.MsgTransferLeader:
      if (r.lead === NONE) {
        r.info?.(`${hex(r.id)} no leader at term ${r.term}; dropping leader transfer msg`);
        return;
      }
      r.send({ ...m, to: r.lead, term: 0 });
      return;
    case MessageType.MsgTimeoutNow:
      if (r.promotable()) {
        r.info?.(`${hex(r.id)} [term ${r.term}] received MsgTimeoutNow from ${hex(m.from)} and starts an election to get leadership.`);
        // No pre-vote for a transfer: we know we are not rejoining from a partition.
        r.campaign(CampaignType.Transfer);
      } else {
        r.info?.(`${hex(r.id)} received MsgTimeoutNow from ${hex(m.from)} but is not promotable`);
      }
      return;
    case MessageType.MsgReadIndex:
      if (r.lead === NONE) {
        r.info?.(`${hex(r.id)} no leader at term ${r.term}; dropping index reading msg`);
        return;
      }
      // A member's read forwarded to us as leader, but we are not leader any more: forwarding it
      // again would stamp it as ours and its answer would come here (etcd does that). Drop it; the
      // requester retries, as with any lost read.
      if (m.from !== NONE && m.from !== r.id) {
        r.debug?.(`${hex(r.id)} not leader; dropping index reading msg from ${hex(m.from)}`);
        return;
      }
      r.send({ ...m, to: r.lead, term: 0 });
      return;
    case MessageType.MsgReadIndexResp:
      if (m.context === undefined) {
        r.warn?.(`${hex(r.id)} invalid format of MsgReadIndexResp from ${hex(m.from)}: no context`);
        return;
      }
      r.readStates.push({ index: m.index, requestCtx: m.context });
      return;
  }
}

export function handleAppendEntries(r: Raft, m: Message): void {
  if (m.index < r.raftLog.committed) {
    r.send(newMessage({ type: MessageType.MsgAppResp, to: m.from, index: r.raftLog.committed }));
    return;
  }
  const lastNewI = r.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
  if (lastNewI !== undefined) {
    r.send(newMessage({ type: MessageType.MsgAppResp, to: m.from, index: lastNewI }));
  } else {
    r.debug?.(`${hex(r.id)} [logterm: ${r.raftLog.zeroTermOnErrCompacted(m.index)}, index: ${m.index}] rejected ${messageTypeName(m.type)} [logterm: ${m.logTerm}, index: ${m.index}] from ${hex(m.from)}`);
    r.send(newMessage({ type: MessageType.MsgAppResp, to: m.from, index: m.index, reject: true, rejectHint: r.raftLog.lastIndex() }));
  }
}

export function handleHeartbeat(r: Raft, m: Message): void {
  r.raftLog.commitTo(m.commit);
  r.send(newMessage({ type: MessageType.MsgHeartbeatResp, to: m.from, context: m.context }));
}

const EMPTY_SNAPSHOT = { metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } } };

export function handleSnapshot(r: Raft, m: Message): void {
  const s = m.snapshot ?? EMPTY_SNAPSHOT;
  const { index: sindex, term: sterm } = s.metadata;
  if (r.restore(s)) {
    r.info?.(`${hex(r.id)} [commit: ${r.raftLog.committed}] restored snapshot [index: ${sindex}, term: ${sterm}]`);
    r.send(newMessage({ type: MessageType.MsgAppResp, to: m.from, index: r.raftLog.lastIndex() }));
  } else {
    r.info?.(`${hex(r.id)} [commit: ${r.raftLog.committed}] ignored snapshot [index: ${sindex}, term: ${sterm}]`);
    r.send(newMessage({ type: MessageType.MsgAppResp, to: m.from, index: r.raftLog.committed }));
  }
}
