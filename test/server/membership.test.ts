import { describe, expect, it } from 'vitest';
import { Errors } from '../../src/errors';
import { ConfChangeType } from '../../src/raft/core/types';
import { decodeMembers, encodeMembers, memberContext, Membership, newMemberId, parseMemberUrls, type Member } from '../../src/server/membership';
import { readyToAddVoter, readyToPromote, readyToRemoveVoter } from '../../src/server/reconfiguration';
import { openBackend } from '../../src/storage';

// The member list's rules, as etcd's membership.RaftCluster: which conf changes may apply (decided the
// same on every member), the strict reconfiguration checks, and etcd's URL rules for MemberAdd.

const member = (id: bigint, name: string, url: string, isLearner = false): Member => ({ id, name, peerUrls: [url], clientUrls: [], isLearner });

async function membershipOf(ms: Member[]): Promise<Membership> {
  const backend = await openBackend('memory', { dir: '' });
  const m = new Membership(1n, 99n, backend);
  for (const x of ms) {
    m.applyConfChange({ id: 0n, type: x.isLearner ? ConfChangeType.ADD_LEARNER_NODE : ConfChangeType.ADD_NODE, nodeId: x.id, context: memberContext(x) });
    if (x.name) m.setAttributes(x.id, x.name, []);
  }
  return m;
}

const add = (m: Member, type: ConfChangeType = m.isLearner ? ConfChangeType.ADD_LEARNER_NODE : ConfChangeType.ADD_NODE) =>
  ({ id: 0n, type, nodeId: m.id, context: memberContext(m) });

describe('Membership.validate (etcd ValidateConfigurationChange)', () => {
  it('answers each refusal with etcd\'s error', async () => {
    const ms = await membershipOf([member(1n, 'a', 'http://h:1'), member(2n, 'b', 'http://h:2')]);
    expect(ms.validate(add(member(3n, '', 'http://h:3')))).toBeUndefined();
    expect(ms.validate(add(member(2n, '', 'http://h:9')))).toBe(Errors.memberExist);
    expect(ms.validate(add(member(3n, '', 'http://h:2')))).toBe(Errors.peerUrlExist);
    expect(ms.validate({ id: 0n, type: ConfChangeType.REMOVE_NODE, nodeId: 7n, context: Buffer.alloc(0) })).toBe(Errors.memberNotFound);
    expect(ms.validate({ id: 0n, type: ConfChangeType.UPDATE_NODE, nodeId: 7n, context: memberContext(member(7n, '', 'http://h:7')) })).toBe(Errors.memberNotFound);
    // Updating to one's own URLs is fine; to another member's is not.
    expect(ms.validate({ id: 0n, type: ConfChangeType.UPDATE_NODE, nodeId: 2n, context: memberContext(member(2n, '', 'http://h:2')) })).toBeUndefined();
    expect(ms.validate({ id: 0n, type: ConfChangeType.UPDATE_NODE, nodeId: 2n, context: memberContext(member(2n, '', 'http://h:1')) })).toBe(Errors.peerUrlExist);
    // Promotion: only a learner.
    expect(ms.validate({ id: 0n, type: ConfChangeType.ADD_NODE, nodeId: 2n, context: memberContext(member(2n, '', ''), true) })).toBe(Errors.memberNotLearner);
    expect(ms.validate({ id: 0n, type: ConfChangeType.ADD_NODE, nodeId: 8n, context: memberContext(member(8n, '', ''), true) })).toBe(Errors.memberNotFound);
    // One learner at most.
    ms.applyConfChange(add(member(4n, '', 'http://h:4', true)));
    expect(ms.validate(add(member(5n, '', 'http://h:5', true)))).toBe(Errors.tooManyLearners);
    expect(ms.validate({ id: 0n, type: ConfChangeType.ADD_NODE, nodeId: 4n, context: memberContext(member(4n, '', ''), true) })).toBeUndefined();
    // A removed ID never comes back.
    ms.applyConfChange({ id: 0n, type: ConfChangeType.REMOVE_NODE, nodeId: 2n, context: Buffer.alloc(0) });
    expect(ms.validate(add(member(2n, '', 'http://h:22')))).toBe(Errors.memberNotFound);
    expect(ms.isRemoved(2n)).toBe(true);
  });

  it('promotion keeps what the learner published; the list survives a reload from the backend', async () => {
    const ms = await membershipOf([member(1n, 'a', 'http://h:1'), member(4n, 'l', 'http://h:4', true)]);
    ms.applyConfChange({ id: 0n, type: ConfChangeType.ADD_NODE, nodeId: 4n, context: memberContext(member(4n, '', ''), true) });
    expect(ms.get(4n)).toEqual(member(4n, 'l', 'http://h:4', false));
    await ms.load();
    expect(ms.list().map((m) => [m.id, m.name, m.isLearner])).toEqual([[1n, 'a', false], [4n, 'l', false]]);
    expect(decodeMembers(JSON.parse(encodeMembers(ms.list())))).toEqual(ms.list());
  });
});

describe('strict reconfiguration checks (etcd IsReadyTo*)', () => {
  it('counts started voters (a name published) against the quorum of the cluster after the change', async () => {
    // One started member may add one (etcd's restore case).
    expect(readyToAddVoter(await membershipOf([member(1n, 'a', 'http://h:1')]))).toBe(true);
    expect(readyToAddVoter(await membershipOf([member(1n, '', 'http://h:1')]))).toBe(false);
    // 1 of 2 started: a third would need 2.
    expect(readyToAddVoter(await membershipOf([member(1n, 'a', 'http://h:1'), member(2n, '', 'http://h:2')]))).toBe(false);
    const three = await membershipOf([member(1n, 'a', 'http://h:1'), member(2n, 'b', 'http://h:2'), member(3n, '', 'http://h:3')]);
    // 2 started of 4 after the change: below its quorum of 3.
    expect(readyToAddVoter(three)).toBe(false);
    expect(readyToRemoveVoter(three, 3n)).toBe(true);
    expect(readyToRemoveVoter(three, 2n)).toBe(false);
    expect(readyToPromote(three)).toBe(true);
  });
});

describe('MemberAdd URLs (etcd types.NewURLs) and IDs (etcd NewMember)', () => {
  it('accepts host:port URLs without a path, sorted; refuses the rest', () => {
    expect(parseMemberUrls(['http://b:2', ' http://a:1 '])).toEqual(['http://a:1', 'http://b:2']);
    expect(parseMemberUrls(['https://[::1]:2380'])).toEqual(['https://[::1]:2380']);
    for (const bad of [[], ['127.0.0.1:2380'], ['http://h'], ['ftp://h:1'], ['http://h:1/path'], ['http://h:1:2']]) {
      expect(parseMemberUrls(bad), JSON.stringify(bad)).toBeUndefined();
    }
  });

  it('derives the ID from the sorted URLs and the second, as etcd', () => {
    const t = Date.UTC(2026, 0, 1);
    expect(newMemberId(['http://b:2', 'http://a:1'], t)).toBe(newMemberId(['http://a:1', 'http://b:2'], t + 999));
    expect(newMemberId(['http://a:1'], t)).not.toBe(newMemberId(['http://a:1'], t + 1000));
  });
});
