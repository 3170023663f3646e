'use strict'
// RLIMIT_MEMLOCK far below what SEND_ZC would pin, as an unprivileged user (`nobody` when the
// suite runs as root, else the current user): the server must carry every body exactly, by
// copying wherever pinning is refused, and say so in its stats.
//
// On kernel 6.18 io_uring charges its own rings to RLIMIT_MEMLOCK as well: the plugin's ring
// (256 SQEs, 4096 CQEs) takes 84 KiB of it. So at `ulimit -l 64` (the issue's figure) the ring
// cannot open at all, and at `ulimit -l 128` the ring opens and 44 KiB are left for pins.
const fs = require('node:fs')
const http = require('node:http')
const { test } = require('tap')
const { KiB, MiB, spawnFixture, getJson, fetchChecked, eventually, seeded } = require('./helpers')

const SEED = 'memlock'
const sizes = [
  ...Array(12).fill(0).map((_, i) => 4 * MiB + i * 4099),
  ...Array(12).fill(0).map((_, i) => 256 * KiB + i * 77),
  ...Array(8).fill(0).map((_, i) => 16 * MiB - i)
]
const expected = sizes.map((n, i) => seeded(SEED, i, n))
const total = 2 * sizes.reduce((a, b) => a + b, 0)
const ulimit = (kib) => ['sh', '-c', `ulimit -l ${kib} && exec "$@"`, 'sh']

/**
 * Every body at once (32 connections), then each again over 16 keep-alive connections:
 * 64 bodies, 376 MiB. Never throws: resolves with the count of exact bodies and the failures.
 */
async function serveAll (server) {
  const failures = []
  let exact = 0
  const check = (settled, i, round) => {
    const res = settled.value
    if (settled.status === 'fulfilled' && res.status === 200 && res.exact && res.sha === server.shas[i]) exact++
    else failures.push(`${round} body ${i}: ${settled.status === 'fulfilled' ? `status ${res.status}, ${res.length} bytes, first bad byte ${res.firstBad}` : settled.reason.message}`)
  }
  const first = await Promise.allSettled(sizes.map((n, i) => fetchChecked(server.port, `/body/${i}`, expected[i])))
  first.forEach((s, i) => check(s, i, 'concurrent'))
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
  const again = await Promise.allSettled(sizes.map((n, i) => fetchChecked(server.port, `/body/${i}`, expected[i], { agent })))
  again.forEach((s, i) => check(s, i, 'keep-alive'))
  agent.destroy()
  return { exact, failures }
}

function checkIdentity (t, server, kib) {
  t.equal(server.state, 'READY', server.message)
  t.not(server.uid, 0, `the server runs as uid ${server.uid}`)
  const limits = fs.readFileSync(`/proc/${server.pid}/limits`, 'utf8')
  const memlock = /^Max locked memory\s+(\d+)/m.exec(limits)?.[1]
  t.equal(Number(memlock), kib * KiB, `RLIMIT_MEMLOCK is ${kib} KiB`)
  const status = fs.readFileSync(`/proc/${server.pid}/status`, 'utf8')
  t.equal(BigInt('0x' + /^CapEff:\s*(\S+)/m.exec(status)[1]), 0n, 'no capabilities (no CAP_IPC_LOCK)')
}

async function settledStats (t, server, count) {
  let stats
  t.ok(await eventually(async () => {
    stats = await getJson(server.port, '/stats')
    return stats.responses.sendZc + stats.responses.send + stats.responses.stream === count &&
      stats.inFlight.sends === 0 && stats.inFlight.pinnedBytes === 0
  }, 10000), 'every body counted, nothing in flight, nothing pinned')
  t.comment(`stats: ${JSON.stringify(stats)}`)
  return stats
}

test('ulimit -l 64: the server starts, says why, and every concurrent large body arrives exact', async (t) => {
  const server = await spawnFixture(t, 'app-server', { drop: true, seed: SEED, sizes, log: 'warn' }, { wrap: ulimit(64) })
  checkIdentity(t, server, 64)
  const caps = server.capabilities
  t.ok(caps.mode === 'send_zc' || /io_uring_setup failed with ENOMEM.*RLIMIT_MEMLOCK/.test(caps.reason),
    `either the ring serves or the reason names ENOMEM and RLIMIT_MEMLOCK (${caps.mode}: ${caps.reason})`)
  t.equal(caps.mode, 'send_zc', 'the ring opens under a 64 KiB memlock limit (so that pinning, not the ring, is refused)')
  const { exact, failures } = await serveAll(server)
  t.same(failures, [], 'no body failed')
  t.equal(exact, 2 * sizes.length, `${exact} bodies (${total / MiB | 0} MiB) exact`)
  const stats = await settledStats(t, server, 2 * sizes.length)
  t.equal(stats.bytes.sendZc + stats.bytes.send + stats.bytes.stream, total, 'every byte counted once')
  t.ok(stats.bytes.send > stats.bytes.sendZc, `copying carried most of it (${stats.bytes.send} by copy, ${stats.bytes.sendZc} by SEND_ZC)`)
  t.equal(server.stderr(), '', 'nothing logged at warn or above')
})

test('ulimit -l 128 (the ring fits, pins do not), default pin budget: every body exact, copied where pinning is refused', async (t) => {
  // whenCopied 'keep': every large body tries SEND_ZC, also on reused connections.
  const server = await spawnFixture(t, 'app-server', { drop: true, seed: SEED, sizes, log: 'warn', options: { whenCopied: 'keep' } }, { wrap: ulimit(128) })
  checkIdentity(t, server, 128)
  t.equal(server.capabilities.mode, 'send_zc', 'the ring opened and SEND_ZC is the configured path')
  const { exact, failures } = await serveAll(server)
  t.same(failures, [], 'no body failed')
  t.equal(exact, 2 * sizes.length, `${exact} of ${2 * sizes.length} bodies (${total / MiB | 0} MiB) exact`)
  const stats = await settledStats(t, server, 2 * sizes.length)
  t.equal(stats.responses.stream, 0, 'no body left the native path')
  t.equal(stats.bytes.sendZc + stats.bytes.send, total, 'every byte carried by the ring')
  t.ok(stats.bytes.sendZc < total / 100, `next to nothing pinned: ${stats.bytes.sendZc} bytes by SEND_ZC, ${stats.bytes.send} by the ring's copying send`)
  t.ok(stats.fallbacks['pin-budget'] > 0, `bodies with slices over the 64 KiB pin budget: ${stats.fallbacks['pin-budget']}`)
  t.equal(server.stderr(), '', 'nothing logged at warn or above')
})

test('ulimit -l 128, pin budget far above it: the kernel refuses to pin (ENOMEM), every body exact', async (t) => {
  const server = await spawnFixture(t, 'app-server', {
    drop: true,
    seed: SEED,
    sizes,
    log: 'warn',
    // 16 KiB slices, 8 in flight per body: a few pins fit beside the ring, most are refused.
    options: { pinBudget: 1024 * MiB, sliceSize: 16 * KiB, depth: 8, whenCopied: 'keep' }
  }, { wrap: ulimit(128) })
  checkIdentity(t, server, 128)
  t.equal(server.capabilities.mode, 'send_zc', 'the ring opened and SEND_ZC is the configured path')
  const { exact, failures } = await serveAll(server)
  t.same(failures, [], 'no body failed')
  t.equal(exact, 2 * sizes.length, `${exact} of ${2 * sizes.length} bodies exact`)
  const stats = await settledStats(t, server, 2 * sizes.length)
  t.equal(stats.responses.stream, 0, 'no body left the native path')
  t.equal(stats.bytes.sendZc + stats.bytes.send, total, 'every byte carried by the ring')
  t.ok(stats.fallbacks.enomem > 0, `bodies with slices the kernel refused to pin (ENOMEM): ${stats.fallbacks.enomem}`)
  t.ok(stats.bytes.send > 0, `${stats.bytes.send} bytes by copy, ${stats.bytes.sendZc} by SEND_ZC`)
  t.equal(server.stderr(), '', 'nothing logged at warn or above')
})
