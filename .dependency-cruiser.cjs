/**
 * Layering (DESIGN §5): gateway → policies → config, no cycles. Checked in `npm test`.
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'A cycle makes the layers meaningless: split the shared piece into its own module.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'config-is-the-contract',
      severity: 'error',
      comment: 'config/ is the pure contract (schema, load, validate): it imports nothing of the runtime.',
      from: { path: '^config/' },
      to: { path: '^(gateway|policies)/' },
    },
    {
      name: 'policies-see-only-the-kernel',
      severity: 'error',
      comment: 'policies/ import only policies/, config/ and the two kernel leaves gateway/errors.ts and gateway/clock.ts.',
      from: { path: '^policies/' },
      to: { path: '^gateway/', pathNot: '^gateway/(errors|clock)\\.ts$' },
    },
    {
      name: 'kernel-leaves-import-nothing-in-house',
      severity: 'error',
      comment: 'gateway/errors.ts and gateway/clock.ts are leaves every layer may use.',
      from: { path: '^gateway/(errors|clock)\\.ts$' },
      to: { path: '^(gateway|policies|config)/' },
    },
    {
      name: 'production-code-does-not-import-tests',
      severity: 'error',
      from: { path: '^(gateway|policies|config)/' },
      to: { path: '^(test|load-tests)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
