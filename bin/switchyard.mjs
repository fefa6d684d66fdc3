#!/usr/bin/env node
// The `switchyard` command. Plain JS so it starts on any Node; the gateway itself is
// TypeScript run directly by Node 24's type stripping (no build step).
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  process.stderr.write(`switchyard needs Node.js 24 or newer (this is ${process.version}); run it through npm (npm start, npx switchyard) to use the project's pinned Node.\n`);
  process.exit(1);
}
// Cache compiled code on disk (the OS temp dir): a CLI command or a gateway worker starts in
// about half the CPU the second time. NODE_COMPILE_CACHE overrides the place;
// NODE_DISABLE_COMPILE_CACHE=1 turns it off.
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
// V8 flags that do not need a restart are set here, before any gateway code is loaded (the
// list and the measurements behind it: bin/v8-flags.mjs).
const { setFlagsFromString } = await import('node:v8');
const { V8_FLAGS } = await import('./v8-flags.mjs');
for (const flag of V8_FLAGS) setFlagsFromString(flag);
const { main } = await import('../gateway/cli/cli.ts');
const code = await main(process.argv.slice(2));
if (code !== undefined) process.exitCode = code;
