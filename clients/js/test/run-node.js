// test/run-node.js: runs the unit suite in Node.js (npm test in clients/js) and prints the result
// in the "N passed, N failed" form; exits 1 on any failure.
import { run } from './unit.js';

const results = await run({ only: process.argv[2] });
for (const r of results) console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name}${r.ok ? '' : `\n${r.error}`}`);
const failed = results.filter((r) => !r.ok).length;
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
