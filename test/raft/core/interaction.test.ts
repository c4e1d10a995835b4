// Runs the interaction scripts in test/raft/core/testdata/ (format: interaction-env.ts). After a
// deliberate change of behaviour, RAFT_INTERACTION_REWRITE=1 writes the actual outputs into the
// scripts; review the diff before committing it.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InteractionEnv, formatScript, parseScript } from './interaction-env';

const dir = join(__dirname, 'testdata');
const rewrite = process.env.RAFT_INTERACTION_REWRITE === '1';

describe('raft interaction scripts', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();
  it('there are scripts', () => {
    expect(files.length).toBeGreaterThan(0);
  });
  for (const file of files) {
    it(file, () => {
      const path = join(dir, file);
      const blocks = parseScript(readFileSync(path, 'utf8'));
      const env = new InteractionEnv();
      const actual = blocks.map((b) => ({ ...b, expected: env.run(b.command) }));
      if (rewrite) {
        writeFileSync(path, formatScript(actual));
        return;
      }
      for (let i = 0; i < blocks.length; i++) {
        expect(actual[i].expected, `${file}:${blocks[i].line}: ${blocks[i].command}`).toBe(blocks[i].expected);
      }
    });
  }
});
