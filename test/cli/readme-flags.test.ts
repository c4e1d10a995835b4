import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FLAGS, FLAGS_MD_BEGIN, FLAGS_MD_END, flagsMarkdown, withFlagsSection } from '../../src/cli/flags';

// README's flag table is generated from the same FLAGS as `plinth --help` (`npm run docs:flags`): this
// fails while the committed table differs from the generated one.

const README = join(__dirname, '..', '..', 'README.md');

describe("README's flag table", () => {
  it('is the one generated from src/cli/flags.ts (run `npm run docs:flags` to update it)', () => {
    const readme = readFileSync(README, 'utf8');
    const a = readme.indexOf(FLAGS_MD_BEGIN);
    const b = readme.indexOf(FLAGS_MD_END);
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(a);
    expect(readme.slice(a + FLAGS_MD_BEGIN.length, b).trim()).toBe(flagsMarkdown());
    expect(withFlagsSection(readme)).toBe(readme);
  });

  it('has a row for every flag, and README has one table of them', () => {
    const table = flagsMarkdown();
    for (const f of FLAGS) expect(table).toContain(`| \`--${f.name}\` |`);
    expect(readFileSync(README, 'utf8').split(FLAGS_MD_BEGIN)).toHaveLength(2);
  });
});
