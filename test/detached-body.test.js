'use strict'
// A body whose ArrayBuffer another part of the program transfers away (structuredClone or
// postMessage with a transfer list) while the response is under way. The plugin marks the
// body's buffer untransferable at the call, so a transfer copies instead of detaching it: the
// response is the body's bytes, never zero bytes under a Content-Length that then makes the
// next response on the connection read as this one, and never memory the body no longer owns.
const http = require('node:http')
const v8 = require('node:v8')
const vm = require('node:vm')
const { MessageChannel } = require('node:worker_threads')
const { test } = require('tap')
const { KiB, MiB, sha256, startServer, fetchChecked, rateReader, eventually, inFlightIsZero } = require('./helpers')
const { seeded } = require('./fixtures/bodies')

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')

const transfers = {
  structuredClone: (ab) => structuredClone(ab, { transfer: [ab] }),
  postMessage: (ab) => {
    const { port1, port2 } = new MessageChannel()
    port1.postMessage(ab, [ab])
    port1.close()
    port2.close()
  }
}

for (const [how, transfer] of Object.entries(transfers)) {
  for (const size of [4 * KiB, 64 * KiB, 4 * MiB]) {
    test(`a body transferred by ${how} in an async onSend hook (${size} bytes): exact, and the next response on the connection too`, async (t) => {
      const master = seeded('detach', size, size)
      const next = seeded('next', 0, 100 * KiB)
      const detached = []
      const { app, port } = await startServer(t, {
        setup (app) {
          app.addHook('onSend', async (req, reply, payload) => {
            if (req.url !== '/body') return payload
            const body = req.body_
            transfer(body.buffer)
            detached.push(body.buffer.byteLength === 0)
            return payload
          })
          app.get('/body', (req, reply) => {
            const body = Buffer.alloc(size)
            master.copy(body)
            req.body_ = body
            return reply.sendZeroCopy(body)
          })
          app.get('/next', (req, reply) => reply.sendZeroCopy(next))
        }
      })
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
      t.teardown(() => agent.destroy())
      for (let round = 0; round < 3; round++) {
        const first = await fetchChecked(port, '/body', master, { agent, cutOk: true })
        t.ok(first.exact && first.sha === sha256(master), `round ${round}: the body exact (${first.length} bytes, first bad ${first.firstBad})`)
        const second = await fetchChecked(port, '/next', next, { agent })
        t.ok(second.exact && second.sha === sha256(next), `round ${round}: the next response on the connection exact`)
      }
      t.same(detached, [false, false, false], 'the transfer did not detach the body (it was copied)')
      t.ok(await eventually(() => inFlightIsZero(app)), 'nothing in flight')
    })
  }
}

test('a SEND_ZC body transferred away and collected mid-transfer: never another byte of memory', async (t) => {
  const size = 8 * MiB
  const master = seeded('mid', 0, size)
  let body = null
  const { app, port } = await startServer(t, {
    options: { sliceSize: 64 * KiB, whenCopied: 'keep' },
    setup (app) {
      app.get('/body', (req, reply) => {
        body = Buffer.alloc(size)
        master.copy(body)
        return reply.sendZeroCopy(body)
      })
    }
  })
  const reader = rateReader(port, '/body', master, { rate: 256 * KiB })
  t.ok(await eventually(() => reader.received() > 0), 'the transfer started')
  // Transfer the body away, drop every reference, collect, and fill the heap with other bytes.
  transfer(body.buffer)
  body = null
  const junk = []
  for (let i = 0; i < 8; i++) {
    gc()
    junk.push(Buffer.alloc(size, 0xee))
    await new Promise((resolve) => setImmediate(resolve))
  }
  reader.setRate(0)
  const res = await reader.done
  t.equal(res.firstBad, -1, `no byte from elsewhere (${res.bodyLength} bytes received, first bad ${res.firstBad})`)
  t.ok(res.complete && res.exact, 'the whole body, exact')
  t.ok(app.zeroCopy.stats().responses.sendZc >= 1, 'it went by SEND_ZC')
  t.ok(await eventually(() => inFlightIsZero(app)), 'every pin released')
  junk.length = 0
})

function transfer (ab) {
  return transfers.structuredClone(ab)
}
