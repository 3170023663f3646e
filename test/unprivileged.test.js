'use strict'
// Pinned SEND_ZC pages count against RLIMIT_MEMLOCK for users without CAP_IPC_LOCK; root
// never sees it. So the server runs as `nobody` (when the suite runs as root) or as the
// current, already unprivileged, user, with the default 8 MiB memlock limit.
const fs = require('node:fs')
const { test } = require('tap')
const { MiB, request, spawnServer, eventually, assertEngine } = require('./helpers')

test('16 concurrent 8 MiB bodies from an unprivileged server with 8 MiB memlock: all exact, none failed', async (t) => {
  const count = 16
  const server = await spawnServer(t, { drop: true, sizes: Array(count).fill(8 * MiB) }, {
    wrap: ['sh', '-c', 'ulimit -l 8192 2>/dev/null; exec "$@"', 'sh']
  })
  t.equal(server.state, 'READY')
  t.not(server.uid, 0, 'the server is not root')
  const limits = fs.readFileSync(`/proc/${server.child.pid}/limits`, 'utf8')
  const memlock = Number(/^Max locked memory\s+(\d+)/m.exec(limits)?.[1])
  t.ok(memlock > 0 && memlock <= 8 * MiB, `memlock limit is ${memlock} bytes`)
  const status = fs.readFileSync(`/proc/${server.child.pid}/status`, 'utf8')
  t.equal(BigInt('0x' + /^CapEff:\s*(\S+)/m.exec(status)[1]), 0n, 'no capabilities')
  t.equal(server.capabilities.mode, 'send_zc', 'the native SEND_ZC path is the one serving')

  const results = await Promise.all(Array.from({ length: count }, (_, i) => request(server.port, `/body/${i}`, { agent: false })))
  results.forEach((res, i) => {
    t.equal(res.status, 200)
    t.equal(res.length, 8 * MiB)
    t.equal(res.sha, server.shas[i], `body ${i} exact`)
  })
  const stats = async () => JSON.parse(await new Promise((resolve, reject) => {
    require('node:http').get({ host: '127.0.0.1', port: server.port, path: '/stats', agent: false }, (res) => {
      let text = ''
      res.on('data', (d) => { text += d })
      res.on('end', () => resolve(text))
    }).on('error', reject)
  }))
  let last
  t.ok(await eventually(async () => {
    last = await stats()
    return last.responses.sendZc + last.responses.send === count && last.inFlight.sends === 0
  }), 'every body went through the ring and everything was reaped')
  t.equal(last.responses.stream, 0, 'no body fell back to the ordinary path')
  t.equal(last.bytes.sendZc + last.bytes.send, count * 8 * MiB)
  t.ok(last.bytes.sendZc > 0, `SEND_ZC carried ${last.bytes.sendZc} bytes; copying carried ${last.bytes.send}`)
  t.equal(last.inFlight.pinnedBytes, 0)
  assertEngine(t, server.capabilities, last, count)
  t.comment(`fallbacks: ${JSON.stringify(last.fallbacks)}`)
})
