'use strict'
// The Fastify organisation's style (neostandard), TypeScript included.
module.exports = [
  ...require('neostandard')({
    ts: true,
    ignores: ['dist/**', 'build/**', 'prebuilds/**', 'node_modules/**', 'bench/results/**', '.tap/**']
  }),
  {
    files: ['**/*.js'],
    languageOptions: { sourceType: 'commonjs' }
  },
  {
    // Load loops run until a flag that a timer or a callback sets: the rule cannot see that.
    rules: { 'no-unmodified-loop-condition': 'off' }
  }
]
