'use strict'
// worker.terminate() of a worker whose JavaScript is busy (a pool recycling its workers): Node
// marks the environment as stopping while that JavaScript still runs, and every Node-API call
// the addon makes from then on that could run JavaScript fails. The process must go on. Each
// scenario runs in a child, so an abort shows as its signal: a Fastify server in each worker
// under load (test/fixtures/worker-terminate.js: bodies, the main thread's server and the
// descriptors checked there), and the addon alone, every entry point called in bursts from
// the engine's own callbacks (test/fixtures/worker-terminate-calls.js).
const { spawn } = require('node:child_process')
const path = require('node:path')
const { test } = require('tap')

const ROUNDS = 6
const engine = process.env.FASTIFY_ZERO_COPY_ENGINE === 'classic' ? 'classic' : 'io_uring'

function runFixture (config, name = 'worker-terminate') {
  const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', `${name}.js`)], {
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
    t.equal(signal, null, signal === null ? 'the process was not killed by a signal' : `killed by ${signal}: ${tail}`)
    t.equal(code, 0, code === 0 ? 'the process exited 0' : `exit code ${code}: ${tail}`)
    t.same(out.split('\n').filter((l) => l.startsWith('BAD ')), [], 'no wrong body, the main thread served, no descriptor left')
    const done = /^DONE (.*)$/m.exec(out)
    t.ok(done, 'the child printed what it checked')
    if (!done) return
    const result = JSON.parse(done[1])
    t.equal(result.rounds, ROUNDS, `${ROUNDS} busy workers terminated`)
    t.same(result.workerExit, Array(ROUNDS).fill(1), 'each by terminate (exit code 1)')
    t.ok(result.exact >= ROUNDS, `${result.exact} bodies exact meanwhile`)
    t.ok(result.fds <= result.baseline, `descriptors back to ${result.baseline} (${result.fds})`)
    const rounds = out.split('\n').filter((l) => l.startsWith('ROUND ')).map((l) => JSON.parse(l.slice(6)))
    t.ok(rounds.every((r) => r.engine === engine), `every worker served with the ${engine} engine`)
    t.ok(rounds.every((r) => r.servedBefore > 0), 'every worker was serving when it was terminated')
  })
}

test(`${engine}: workers terminated while they call every entry point of the addon`, { timeout: 120000 }, async (t) => {
  const addon = require('node-gyp-build').path(path.join(__dirname, '..'))
  const rounds = 40
  const { code, signal, out, err } = await runFixture({ addon, kind: engine === 'classic' ? 1 : 0, rounds, seed: 1 }, 'worker-terminate-calls')
  const tail = (err || out).split('\n').slice(-6).join('\n')
  t.equal(signal, null, signal === null ? 'the process was not killed by a signal' : `killed by ${signal}: ${tail}`)
  t.equal(code, 0, code === 0 ? 'the process exited 0' : `exit code ${code}: ${tail}`)
  const done = /^DONE (.*)$/m.exec(out)
  t.ok(done, 'the child printed what it ran')
  if (!done) return
  const result = JSON.parse(done[1])
  t.equal(result.rounds, rounds, `${rounds} workers terminated`)
  t.ok(result.calls > rounds * 100, `${result.calls} calls into the addon before the terminates`)
  t.same(result.errors, [], 'no worker reported an error of its own')
  t.same(result.left, [], `no descriptor left (${result.fdsBefore} before, ${result.fdsAfter} after)`)
})

// The other way a callback from the engine fails: it throws. Reported as Node reports an
// exception from any I/O callback ('uncaughtException'), never an abort, and the engine goes on.
test(`${engine}: a callback of the addon that throws is an uncaught exception, and the engine goes on`, async (t) => {
  const addon = require('node-gyp-build').path(path.join(__dirname, '..'))
  const script = `
    const fs = require('node:fs')
    const addon = require(${JSON.stringify(addon)})
    const kind = ${engine === 'classic' ? 1 : 0}
    addon.open(64, kind)
    const dir = fs.mkdtempSync(require('node:os').tmpdir() + '/zc-throw-')
    fs.writeFileSync(dir + '/file', 'x')
    const root = addon.openRoot(dir)
    process.on('uncaughtException', (err) => {
      console.log('UNCAUGHT ' + err.message)
      addon.openBeneath(root, 'file', 0, 0, (code, fd) => {
        console.log('AGAIN ' + JSON.stringify({ code, opened: fd >= 0 }))
        addon.closeFile(fd, false, kind)
        fs.rmSync(dir, { recursive: true })
      }, kind)
    })
    addon.openBeneath(root, 'file', 0, 0, (code, fd) => {
      addon.closeFile(fd, false, kind)
      throw new Error('thrown by the callback')
    }, kind)
  `
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => { out += d })
  child.stderr.on('data', (d) => { err += d })
  const { code, signal } = await new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  t.equal(signal, null, `no signal (${signal}): ${err}`)
  t.equal(code, 0, `exit code 0 (${code}): ${err}`)
  t.match(out, /^UNCAUGHT thrown by the callback$/m, 'the exception reached process.on(\'uncaughtException\')')
  t.match(out, /^AGAIN \{"code":null,"opened":true\}$/m, 'and the engine opened the next file')
})
