#!/usr/bin/env node
'use strict';
// V8 optimizes a function once it has run enough; a server's hot paths (decode, raft, mvcc, encode) run
// millions of times, so letting them tier up sooner gets a fresh member to full speed within far fewer
// requests (measured with etcd's Go tool on fresh 3-member clusters: +8% puts, +20% linearizable reads;
// README "Benchmarks"). PLINTH_NO_V8_TUNING=1 leaves V8's defaults.
if (process.env.PLINTH_NO_V8_TUNING !== '1') require('v8').setFlagsFromString('--interrupt-budget=4096');
// The compiled CLI lives in dist/ (built by `npm install` via the prepare script, or `npm run build`).
require('../dist/src/cli/main.js').main(process.argv.slice(2));
