#!/usr/bin/env node
'use strict';
// The compiled CLI lives in dist/ (built by `npm install` via the prepare script, or `npm run build`).
require('../dist/src/cli/main.js').main(process.argv.slice(2));
