#!/usr/bin/env node
// The `switchyard` command. Plain JS so it starts on any Node; the gateway itself is
// TypeScript run directly by Node 24's type stripping (no build step).
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  process.stderr.write(`switchyard needs Node.js 24 or newer (this is ${process.version}); run it through npm (npm start, npx switchyard) to use the project's pinned Node.\n`);
  process.exit(1);
}
// V8 pretenures allocation sites whose objects it sees survive; under proxy load that put
// per-request objects in old space, whose references then kept every young object they
// touched alive through scavenges (~10 MB promoted and a 20 ms pause per scavenge, against
// ~2 ms without). Measured with --trace-gc-nvp; see README "Performance".
const { setFlagsFromString } = await import('node:v8');
setFlagsFromString('--no-allocation-site-pretenuring');
const { main } = await import('../gateway/cli/cli.ts');
const code = await main(process.argv.slice(2));
if (code !== undefined) process.exitCode = code;
