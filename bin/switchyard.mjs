#!/usr/bin/env node
// The `switchyard` command. Plain JS so it starts on any Node; the gateway itself is
// TypeScript run directly by Node 24's type stripping (no build step).
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  process.stderr.write(`switchyard needs Node.js 24 or newer (this is ${process.version}); run it through npm (npm start, npx switchyard) to use the project's pinned Node.\n`);
  process.exit(1);
}
const { main } = await import('../gateway/cli.ts');
const code = await main(process.argv.slice(2));
if (code !== undefined) process.exitCode = code;
