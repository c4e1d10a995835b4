// Applying v1 conf changes to the tracker's configuration (etcd-io/raft's confchange.Changer.Simple
// and confchange.Restore, without joint consensus). Changes are computed on a copy, so a change
// that fails leaves the tracker as it was.
import { Progress, type ProgressTracker } from './progress';
import { ConfChangeType, RaftError, type ConfState, type NodeId } from './types';

export interface TrackerConfig {
  voters: Set<NodeId>;
  learners: Set<NodeId>;
  progress: Map<NodeId, Progress>;
}

export interface SingleChange {
  type: ConfChangeType;
  nodeId: NodeId;
}

export class Changer {
  constructor(
    private readonly tracker: ProgressTracker,
    /** New members' next starts here (etcd 3.4 probes them from the leader's last index). */
    private readonly lastIndex: number,
  ) {}

  /** One change (or none, for node id 0): adding an existing voter, removing an absent node are no-ops. */
  simple(changes: SingleChange[]): TrackerConfig {
    const cfg = this.copy();
    for (const cc of changes) {
      if (cc.nodeId === 0n) continue;
      switch (cc.type) {
        case ConfChangeType.ADD_NODE: this.makeVoter(cfg, cc.nodeId); break;
        case ConfChangeType.ADD_LEARNER_NODE: this.makeLearner(cfg, cc.nodeId); break;
        case ConfChangeType.REMOVE_NODE: this.remove(cfg, cc.nodeId); break;
        case ConfChangeType.UPDATE_NODE: break;
        default: throw new RaftError(`unexpected conf type ${cc.type as number}`);
      }
    }
    if (cfg.voters.size === 0) throw new RaftError('removed all voters');
    let changed = 0;
    for (const id of cfg.voters) if (!this.tracker.voters.has(id)) changed++;
    for (const id of this.tracker.voters) if (!cfg.voters.has(id)) changed++;
    if (changed > 1) throw new RaftError('more than one voter changed without entering joint config');
    return cfg;
  }

  private copy(): TrackerConfig {
    const progress = new Map<NodeId, Progress>();
    for (const [id, pr] of this.tracker.progress) progress.set(id, pr.clone());
    return { voters: new Set(this.tracker.voters), learners: new Set(this.tracker.learners), progress };
  }

  private makeVoter(cfg: TrackerConfig, id: NodeId): void {
    const pr = cfg.progress.get(id);
    if (!pr) {
      this.initProgress(cfg, id, false);
      return;
    }
    pr.isLearner = false;
    cfg.learners.delete(id);
    cfg.voters.add(id);
  }

  private makeLearner(cfg: TrackerConfig, id: NodeId): void {
    const pr = cfg.progress.get(id);
    if (!pr) {
      this.initProgress(cfg, id, true);
      return;
    }
    if (pr.isLearner) return;
    // A voter demoted: out of the voters, progress kept.
    this.remove(cfg, id);
    cfg.progress.set(id, pr);
    pr.isLearner = true;
    cfg.learners.add(id);
  }

  private remove(cfg: TrackerConfig, id: NodeId): void {
    if (!cfg.progress.has(id)) return;
    cfg.voters.delete(id);
    cfg.learners.delete(id);
    cfg.progress.delete(id);
  }

  private initProgress(cfg: TrackerConfig, id: NodeId, isLearner: boolean): void {
    if (isLearner) cfg.learners.add(id);
    else cfg.voters.add(id);
    cfg.progress.set(id, new Progress({
      match: 0,
      next: this.lastIndex,
      maxInflight: this.tracker.maxInflight,
      isLearner,
      // A new member counts as active, so check-quorum does not step the leader down at once.
      recentActive: true,
    }));
  }
}

/**
 * Rebuilds a configuration from a ConfState (a snapshot's, or the storage's initial one) by adding
 * its voters, then its learners, one at a time onto the (empty) tracker given.
 */
export function restoreConfig(tracker: ProgressTracker, lastIndex: number, cs: ConfState): TrackerConfig {
  const changes: SingleChange[] = [
    ...cs.voters.map((nodeId) => ({ type: ConfChangeType.ADD_NODE, nodeId })),
    ...cs.learners.map((nodeId) => ({ type: ConfChangeType.ADD_LEARNER_NODE, nodeId })),
  ];
  let cfg: TrackerConfig = { voters: new Set(), learners: new Set(), progress: new Map() };
  for (const cc of changes) {
    cfg = new Changer(tracker, lastIndex).simple([cc]);
    tracker.setConfig(cfg.voters, cfg.learners, cfg.progress);
  }
  return cfg;
}
