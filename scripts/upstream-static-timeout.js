'use strict'
// Preloaded by scripts/upstream-static.js in each test file's process: every top-level test
// of @fastify/static's suite that sets no timeout of its own gets 10 s, so one that hangs
// fails alone (node's --test-timeout would also cut the whole file at 10 s).
const nodeTest = require('node:test')

const TIMEOUT_MS = Number(process.env.UPSTREAM_STATIC_TEST_TIMEOUT_MS) || 10000
const original = nodeTest.test

function test (...args) {
  const at = args.findIndex((a) => typeof a === 'object' && a !== null)
  if (at !== -1) args[at] = { timeout: TIMEOUT_MS, ...args[at] }
  else {
    const fn = args.findIndex((a) => typeof a === 'function')
    args.splice(fn === -1 ? args.length : fn, 0, { timeout: TIMEOUT_MS })
  }
  return original(...args)
}
Object.assign(test, original)
nodeTest.test = test
