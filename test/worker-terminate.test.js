'use strict'
// worker.terminate() of a worker whose JavaScript is busy serving (a pool recycling its
// workers): Node marks the environment as stopping while that JavaScript still runs, and every
// Node-API call the addon makes from then on fails. The process must go on: the whole
// scenario runs in a child (test/fixtures/worker-terminate.js), so an abort shows as its
// signal, and the child checks the bodies, the main thread's server and its descriptors.
const { spawn } = require('node:child_process')
const path = require('node:path')
const { test } = require('tap')

const ROUNDS = 6
const engine = process.env.FASTIFY_ZERO_COPY_ENGINE === 'classic' ? 'classic' : 'io_uring'

function runFixture (config) {
  const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'worker-terminate.js')], {
    env: { ...process.env, ZC_FIXTURE: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => { out += d })
  child.stderr.on('data', (d) => { err += d })
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, out, err })))
}

for (const seed of [1, 2]) {
  test(`${engine}: busy workers terminated under load (seed ${seed}) leave the process serving`, { timeout: 120000 }, async (t) => {
    const { code, signal, out, err } = await runFixture({ rounds: ROUNDS, clients: 64, seed, minMs: 300, maxMs: 600 })
    const tail = (err || out).split('\n').slice(-6).join('\n')
    t.equal(signal, null, `the process was not killed by a signal (${signal}): ${tail}`)
    t.equal(code, 0, `the process exited 0 (${code}): ${tail}`)
    t.same(out.split('\n').filter((l) => l.startsWith('BAD ')), [], 'no wrong body, the main thread served, no descriptor left')
    const done = /^DONE (.*)$/m.exec(out)
    t.ok(done, 'the child printed what it checked')
    if (!done) return
    const result = JSON.parse(done[1])
    t.equal(result.rounds, ROUNDS, `${ROUNDS} busy workers terminated`)
    t.same(result.workerExit, Array(ROUNDS).fill(1), 'each by terminate (exit code 1)')
    t.ok(result.exact > ROUNDS * 64, `${result.exact} bodies exact meanwhile`)
    t.ok(result.fds <= result.baseline, `descriptors back to ${result.baseline} (${result.fds})`)
    const rounds = out.split('\n').filter((l) => l.startsWith('ROUND ')).map((l) => JSON.parse(l.slice(6)))
    t.ok(rounds.every((r) => r.engine === engine), `every worker served with the ${engine} engine`)
    t.ok(rounds.every((r) => r.servedBefore > 0), 'every worker was serving when it was terminated')
  })
}
