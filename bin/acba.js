#!/usr/bin/env node
// The `acba` command. ACBA is written in TypeScript and runs from source
// through tsx, so a clone works with `npx acba ...` and no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
