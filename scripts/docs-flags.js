#!/usr/bin/env node
'use strict';
// Rewrites README.md's flag table (between the flags:begin / flags:end markers) from src/cli/flags.ts,
// the source `plinth --help` prints from. Run after `npm run build`: `npm run docs:flags`.
// test/cli/readme-flags.test.ts fails while README's table differs from the generated one.
const { readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { withFlagsSection } = require('../dist/src/cli/flags.js');

const file = join(__dirname, '..', 'README.md');
const before = readFileSync(file, 'utf8');
const after = withFlagsSection(before);
if (after !== before) writeFileSync(file, after);
process.stdout.write(after === before ? 'README.md: flag table up to date\n' : 'README.md: flag table rewritten\n');
