// Step-by-step comparison of a scenario's normalised outputs (reference etcd vs a target), with
// known-difference bookkeeping and the failure message. Pure functions: unit-tested in harness.test.ts.
import { isDeepStrictEqual } from 'node:util';
import { render, type NormalisedOutput } from './normalise';
import { isGrpc, type KnownDifference, type Scenario, type Step } from './scenarios';

export interface TargetInfo {
  name: string; // e.g. 'plinth:lmdb', 'etcd'
  kind: 'etcd' | 'plinth';
}

export interface StepDiff {
  index: number; // 0-based
  step: Step;
  expected: NormalisedOutput;
  actual: NormalisedOutput;
  /** Reason from a matching knownDifference mark (step, else scenario), if any. */
  known?: string;
}

export interface Comparison {
  diffs: StepDiff[];
  unexpected: StepDiff[];
  known: StepDiff[];
  /** Marks that no longer correspond to a difference. */
  stale: string[];
}

/** The reason of a mark if it applies to this target. Marks never apply to etcd targets. */
export function knownReason(k: KnownDifference | undefined, target: TargetInfo): string | undefined {
  if (k === undefined || target.kind !== 'plinth') return undefined;
  if (typeof k === 'string') return k;
  if (k.targets && !k.targets.includes(target.name)) return undefined;
  return k.reason;
}

export function compareScenario(
  scenario: Scenario,
  expected: NormalisedOutput[],
  actual: NormalisedOutput[],
  target: TargetInfo,
): Comparison {
  if (expected.length !== scenario.steps.length || actual.length !== scenario.steps.length) {
    throw new Error(`scenario ${scenario.name}: ${scenario.steps.length} steps but ${expected.length} reference and ${actual.length} target outputs`);
  }
  const scenarioKnown = knownReason(scenario.knownDifference, target);
  const diffs: StepDiff[] = [];
  const stale: string[] = [];
  scenario.steps.forEach((step, index) => {
    const stepKnown = knownReason(step.knownDifference, target);
    if (!isDeepStrictEqual(expected[index], actual[index])) {
      diffs.push({ index, step, expected: expected[index]!, actual: actual[index]!, known: stepKnown ?? scenarioKnown });
    } else if (stepKnown) {
      stale.push(`  step #${index + 1}: ${describeStep(step)}\n     marked as a known difference ("${stepKnown}") but the outputs are equal: remove the mark`);
    }
  });
  if (scenarioKnown && diffs.length === 0) {
    stale.push(`  scenario marked as a known difference ("${scenarioKnown}") but every step is equal: remove the mark`);
  }
  return { diffs, unexpected: diffs.filter((d) => !d.known), known: diffs.filter((d) => d.known), stale };
}

export function describeStep(step: Step): string {
  if (isGrpc(step)) return `gRPC KV.${step.grpc} ${render(step.request, 600).replace(/\s*\n\s*/g, ' ')}`;
  const quoted = step.args.map((a) => (a === '' || /[\s"'{}]/.test(a) ? JSON.stringify(a) : a)).join(' ');
  let s = `etcdctl ${quoted}`;
  if (step.stdin !== undefined) {
    const shown = step.stdin.length > 300 ? `${step.stdin.slice(0, 300)}…(${step.stdin.length} chars)` : step.stdin;
    s += `\n     stdin: ${JSON.stringify(shown)}`;
  }
  return s;
}

const indent = (s: string, n: number) => s.replace(/^/gm, ' '.repeat(n));

export function formatDiff(d: StepDiff, targetName: string): string {
  return [
    `  step #${d.index + 1}: ${describeStep(d.step)}`,
    ...(d.step.note ? [`     note: ${d.step.note}`] : []),
    ...(d.known ? [`     known difference: ${d.known}`] : []),
    `     etcd 3.4:\n${indent(render(d.expected), 8)}`,
    `     ${targetName}:\n${indent(render(d.actual), 8)}`,
  ].join('\n');
}

/** The failure message for a comparison, or undefined when the scenario passes. */
export function failureMessage(scenario: Scenario, c: Comparison, targetName: string, maxShown = 8): string | undefined {
  if (c.unexpected.length === 0 && c.stale.length === 0) return undefined;
  const head =
    `scenario "${scenario.name}" (${scenario.description}): ${c.unexpected.length} of ${scenario.steps.length} steps differ ` +
    `between etcd 3.4 and ${targetName}` +
    (c.stale.length ? `; ${c.stale.length} stale known-difference mark(s)` : '') +
    (c.unexpected.length ? ' (steps run in order, so later differences may follow from the first)' : '');
  const shown = c.unexpected.slice(0, maxShown).map((d) => formatDiff(d, targetName));
  const more = c.unexpected.length > maxShown ? [`  … and ${c.unexpected.length - maxShown} more differing steps`] : [];
  return [head, ...shown, ...more, ...c.stale].join('\n');
}
