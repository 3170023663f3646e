'use strict'
// io_uring refused for real (a seccomp filter makes io_uring_setup fail with ENOSYS, as
// Podman's default profile does, or EPERM, as Docker's and kernel.io_uring_disabled do), under
// load: test/fallback.test.js checks that such a server starts and says why; here it serves
// many bodies to many concurrent connections, with clients vanishing mid-body, all exact, the
// large ones (buffers and files) natively on the classic engine, and gives back its fds.
const fs = require('node:fs')
const path = require('node:path')
const http = require('node:http')
const { test } = require('tap')
const { KiB, MiB, spawnFixture, compileFixture, getJson, fetchChecked, procFds, eventually, seeded, tempDir } = require('./helpers')

const SEED = 'seccomp'
const sizes = [1000, 16 * KiB - 1, 16 * KiB, 200 * KiB + 1, MiB, 4 * MiB + 3, 8 * MiB]
const expected = sizes.map((n, i) => seeded(SEED, i, n))

for (const errno of ['ENOSYS', 'EPERM']) {
  test(`io_uring_setup refused with ${errno}: 64 concurrent keep-alive connections, every body exact`, async (t) => {
    const deny = compileFixture(t, 'deny-io-uring')
    const dir = tempDir(t, 0o755)
    const fileSizes = [16 * KiB, MiB + 7, 6 * MiB + 1]
    const files = fileSizes.map((n, i) => seeded(SEED, `file-${i}`, n))
    files.forEach((body, i) => fs.writeFileSync(path.join(dir, `f${i}.bin`), body, { mode: 0o644 }))
    // whenCopied 'send': loopback copies every MSG_ZEROCOPY send, and with the default a
    // connection's later large bodies would go by Fastify's path; this way they stay native
    // (the classic engine's copying send), so that every large body must be the engine's.
    // The engine is what the machine allows: the environment's default must not decide it.
    const server = await spawnFixture(t, 'app-server', { seed: SEED, sizes, dir, log: 'warn', options: { whenCopied: 'send' } }, { wrap: ['env', '-u', 'FASTIFY_ZERO_COPY_ENGINE', deny, errno] })
    t.equal(server.state, 'READY', 'the server started')
    const status = fs.readFileSync(`/proc/${server.pid}/status`, 'utf8')
    t.match(status, /^Seccomp:\s+2$/m, 'it runs under a seccomp filter')
    t.equal(server.capabilities.native, true, 'the addon loaded')
    t.equal(server.capabilities.ioUring, false, 'no ring could be created')
    t.equal(server.capabilities.engine, 'classic', "'auto' took the classic engine")
    t.equal(server.capabilities.mode, 'send_zc', 'with MSG_ZEROCOPY')
    t.match(server.capabilities.reason, new RegExp(`^io_uring_setup failed with ${errno}: `), `reason: ${server.capabilities.reason}`)
    const baseline = procFds(server.pid)

    // 64 lanes, each a keep-alive connection asking for every body twice; every fourth lane's
    // client vanishes in the middle of its large bodies the first time round.
    let exact = 0
    let vanished = 0
    const failures = []
    await Promise.all(Array.from({ length: 64 }, async (_, lane) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
      try {
        for (let round = 0; round < 2; round++) {
          for (let k = 0; k < sizes.length; k++) {
            const i = (lane + k) % sizes.length
            const vanish = round === 0 && lane % 4 === 0 && sizes[i] >= MiB
            const res = await fetchChecked(server.port, `/body/${i}`, expected[i], { agent, vanishAt: vanish ? sizes[i] >> 1 : -1, reset: lane % 8 === 0 })
            if (res.vanished) {
              if (res.firstBad < 0) vanished++
              else failures.push(`lane ${lane}: vanished body ${i}, first bad byte ${res.firstBad}`)
            } else if (res.status === 200 && res.exact && res.sha === server.shas[i]) exact++
            else failures.push(`lane ${lane}: body ${i}, status ${res.status}, ${res.length} bytes, first bad byte ${res.firstBad}`)
          }
        }
      } finally {
        agent.destroy()
      }
    }))
    t.same(failures, [], 'no failure')
    const total = 64 * 2 * sizes.length
    t.equal(exact + vanished, total, `${exact} bodies exact, ${vanished} clients vanished mid-body (true prefixes)`)
    t.ok(vanished >= 16 * 3 - 1, 'the vanishing clients did vanish')
    const small = sizes.filter((n) => n < 16 * KiB)
    const smallCount = 64 * 2 * small.length
    const largeCount = total - smallCount
    let stats
    t.ok(await eventually(async () => {
      stats = await getJson(server.port, '/stats')
      return stats.responses.stream + stats.responses.sendZc + stats.responses.send === total && stats.inFlight.sends === 0
    }), 'every body counted, nothing in flight')
    t.equal(stats.responses.stream, smallCount, 'only the bodies below the threshold through Fastify\'s path')
    t.equal(stats.bytes.stream, 64 * 2 * small.reduce((a, b) => a + b, 0), 'no stream bytes for a large body')
    t.equal(stats.responses.sendZc + stats.responses.send, largeCount, `every large body native (${stats.responses.sendZc} by MSG_ZEROCOPY, ${stats.responses.send} by send)`)
    t.ok(stats.responses.sendZc >= 64, 'each connection\'s first large body by MSG_ZEROCOPY')
    t.same(stats.engines, { io_uring: { responses: 0, bytes: 0 }, classic: { responses: largeCount, bytes: stats.bytes.sendZc + stats.bytes.send } }, 'all of them the classic engine\'s')
    // kernel-copies: loopback; pin-budget: slices copied while 64 first bodies pinned the budget.
    const { 'below-threshold': below, 'kernel-copies': copies, 'pin-budget': budget, ...others } = stats.fallbacks
    t.equal(below, smallCount, 'below-threshold: the small bodies')
    t.ok(copies > 0, `kernel-copies: ${copies} (pin-budget: ${budget ?? 0})`)
    t.same(others, {}, `no other fallback: ${JSON.stringify(stats.fallbacks)}`)
    t.equal(stats.inFlight.pinnedBytes, 0, 'nothing pinned')

    // Files: at and above the threshold by sendfile, exact, 8 clients at once for each.
    const before = stats
    const got = await Promise.all(files.flatMap((body, i) => Array.from({ length: 8 }, () => fetchChecked(server.port, `/file/f${i}.bin`, body))))
    t.equal(got.filter((r) => r.status === 200 && r.exact).length, 8 * files.length, 'every file download exact')
    t.ok(await eventually(async () => {
      stats = await getJson(server.port, '/stats')
      return stats.responses.sendfile - before.responses.sendfile === 8 * files.length && stats.inFlight.sends === 0
    }), 'every file counted under sendfile')
    t.equal(stats.bytes.sendfile - before.bytes.sendfile, 8 * fileSizes.reduce((a, b) => a + b, 0), 'every file byte by sendfile')
    t.equal(stats.bytes.stream, before.bytes.stream, 'no stream bytes for the files')
    t.equal(stats.responses.splice + stats.bytes.splice, 0, 'nothing spliced')
    t.equal(stats.engines.classic.responses - before.engines.classic.responses, 8 * files.length, 'the classic engine carried them')
    t.ok(await eventually(() => procFds(server.pid) === baseline, 10000), `server fds back to ${baseline} (now ${procFds(server.pid)})`)
    t.equal(server.stderr(), '', 'nothing logged at warn or above')
  })
}
