'use strict'
// io_uring refused for real (a seccomp filter makes io_uring_setup fail with ENOSYS, as
// Docker's default profile does, or EPERM, as kernel.io_uring_disabled does), under load:
// test/fallback.test.js checks that such a server starts and says why; here it serves many
// bodies to many concurrent connections, with clients vanishing mid-body, all exact through
// the ordinary path, and gives back its fds.
const http = require('node:http')
const { test } = require('tap')
const { KiB, MiB, spawnFixture, compileFixture, getJson, fetchChecked, procFds, eventually, seeded } = require('./helpers')

const SEED = 'seccomp'
const sizes = [1000, 16 * KiB - 1, 16 * KiB, 200 * KiB + 1, MiB, 4 * MiB + 3, 8 * MiB]
const expected = sizes.map((n, i) => seeded(SEED, i, n))

for (const errno of ['ENOSYS', 'EPERM']) {
  test(`io_uring_setup refused with ${errno}: 64 concurrent keep-alive connections, every body exact`, async (t) => {
    const deny = compileFixture(t, 'deny-io-uring')
    const server = await spawnFixture(t, 'app-server', { seed: SEED, sizes, log: 'warn' }, { wrap: [deny, errno] })
    t.equal(server.state, 'READY', 'the server started')
    const status = require('node:fs').readFileSync(`/proc/${server.pid}/status`, 'utf8')
    t.match(status, /^Seccomp:\s+2$/m, 'it runs under a seccomp filter')
    t.equal(server.capabilities.native, true, 'the addon loaded')
    t.equal(server.capabilities.ioUring, false, 'no ring could be created')
    t.equal(server.capabilities.mode, 'stream')
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
    let stats
    t.ok(await eventually(async () => {
      stats = await getJson(server.port, '/stats')
      return stats.responses.stream === total
    }), 'every body counted')
    t.same(stats.responses, { sendZc: 0, send: 0, splice: 0, sendfile: 0, stream: total }, 'every body through Fastify\'s ordinary path')
    t.same(Object.keys(stats.fallbacks).sort(), ['below-threshold', 'native-unavailable'], `fallbacks: ${JSON.stringify(stats.fallbacks)}`)
    t.ok(await eventually(() => procFds(server.pid) === baseline, 10000), `server fds back to ${baseline} (now ${procFds(server.pid)})`)
    t.equal(server.stderr(), '', 'nothing logged at warn or above')
  })
}
