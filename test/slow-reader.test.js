'use strict'
// A client that reads a buffer body slowly, after Node let go of its connection (the
// keep-alive timeout ran out, or Connection: close, while the body still sat in the kernel's
// socket buffers). Node's own close leaves such a connection to the kernel, which goes on
// delivering the body for as long as the client keeps reading; the op that lets go with Node
// must do the same, and reset only a client that has stopped reading (its window shut) for
// the grace. The server runs in a process of its own (test/fixtures/app-server.js), so that
// the clients' pauses and timers never share its event loop.
const crypto = require('node:crypto')
const net = require('node:net')
const { test } = require('tap')
const { KiB, MiB, spawnFixture, getJson, after, sleep } = require('./helpers')

const SEED = 'slow-reader'
// How long the engines wait for a client whose window stays shut after Node let go
// (native/engine.h kLetGoGraceMs).
const GRACE_MS = 5000
const SIZES = [1 * MiB, 2 * MiB, 3 * MiB, 4 * MiB]

/**
 * One GET on a fresh connection, read as the torture's slow reader does: after each chunk
 * the socket pauses for chunk.length / rate. `hiccup`: { at, ms }, one pause of `ms` once
 * `at` body bytes arrived (a busy client's event loop). `stopAt`: stop reading once that
 * many body bytes arrived. Resolves when the connection ends (`handle`: returns { done,
 * readOn } instead).
 */
function slowGet (port, path, { rate, close = false, hiccup = null, stopAt = -1, handle = false }) {
  const socket = net.connect(port, '127.0.0.1')
  let readOn = false
  const done = new Promise((resolve) => {
    const hash = crypto.createHash('sha256')
    let head = Buffer.alloc(0)
    let headDone = false
    let declared = -1
    let got = 0
    let error = null
    let stoppedAt = 0
    let hiccupDone = hiccup === null
    socket.on('connect', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n${close ? 'Connection: close\r\n' : ''}\r\n`)
    })
    socket.on('data', (chunk) => {
      if (!headDone) {
        head = Buffer.concat([head, chunk])
        const at = head.indexOf('\r\n\r\n')
        if (at < 0) return
        headDone = true
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(head.subarray(0, at).toString('latin1'))
        declared = m ? Number(m[1]) : -1
        chunk = head.subarray(at + 4)
      }
      hash.update(chunk)
      got += chunk.length
      if (readOn) return
      socket.pause()
      if (stopAt >= 0 && got >= stopAt) {
        if (stoppedAt === 0) stoppedAt = Date.now()
        return // never resumes
      }
      let ms = Math.ceil(chunk.length / rate * 1000)
      if (!hiccupDone && got >= hiccup.at) {
        hiccupDone = true
        ms += hiccup.ms
      }
      setTimeout(() => socket.resume(), ms)
    })
    socket.on('error', (err) => { error = err.code })
    socket.on('close', () => resolve({ path, declared, got, sha: hash.digest('hex'), error, stoppedAt, closedAt: Date.now() }))
  })
  // readOn(): reads whatever comes, as fast as it comes.
  return handle ? { done, readOn: () => { readOn = true; socket.resume() } } : done
}

async function startServer (t, fastify) {
  const server = await spawnFixture(t, 'app-server', {
    seed: SEED, sizes: SIZES, log: 'warn', options: { whenCopied: 'keep' }, fastify
  })
  t.equal(server.state, 'READY', server.message)
  t.equal(server.capabilities.mode, 'send_zc', 'buffer bodies go by zero-copy sends')
  return server
}

function exact (server, res, i) {
  return res.error === null && res.declared === SIZES[i] && res.got === SIZES[i] && res.sha === server.shas[i]
}

function describe (res) {
  return `${res.path}: ${res.got} of ${res.declared} bytes${res.error ? `, ${res.error}` : ''}`
}

test('slow readers (1-4 MiB at 1-4 MiB/s) of buffer bodies Node let go of (keepAliveTimeout 200 ms, Connection: close) get every byte', async (t) => {
  const server = await startServer(t, { keepAliveTimeout: 200 })
  const failures = []
  let count = 0
  for (let round = 0; round < 2; round++) {
    const all = []
    for (let k = 0; k < 8; k++) {
      const i = (k + round) % SIZES.length
      all.push(slowGet(server.port, `/body/${i}`, { rate: (1 + ((k + 2 * round) % 4)) * MiB, close: k % 2 === 1 }).then((res) => ({ res, i })))
    }
    for (const { res, i } of await Promise.all(all)) {
      count++
      if (!exact(server, res, i)) failures.push(describe(res))
    }
  }
  t.same(failures, [], `${count} slow readers, each read its whole body, SHA-256 checked`)
  const stats = await getJson(server.port, '/stats')
  t.ok(stats.responses.sendZc >= count, `by SEND_ZC (${stats.responses.sendZc} responses)`)
  t.equal(server.stderr(), '', 'nothing on stderr')
})

test('a slow reader that stops for 3 s once after Node let go, then reads on, gets every byte, as from reply.send', async (t) => {
  const server = await startServer(t, { keepAliveTimeout: 200 })
  // 2 MiB: the kernel takes it whole at once (the op finishes and Node lets go within
  // 200 ms), and most of it is still in the server's socket when the client pauses. (A body
  // the kernel cannot take whole keeps the response, and Node's connection, open until the
  // client has read enough: Node's own timeouts apply then, as to reply.send.)
  const i = 1
  const hiccup = { at: 256 * KiB, ms: 3000 }
  for (const close of [true, false]) {
    const how = close ? 'Connection: close' : 'keepAliveTimeout'
    // The same client against Node's own path: the kernel waits for it.
    const plain = await slowGet(server.port, `/plain/${i}`, { rate: 1 * MiB, close, hiccup })
    t.ok(exact(server, plain, i), `reply.send (${how}): ${describe(plain)}`)
    const zc = await slowGet(server.port, `/body/${i}`, { rate: 1 * MiB, close, hiccup })
    t.ok(exact(server, zc, i), `sendZeroCopy (${how}): ${describe(zc)}`)
  }
  t.equal(server.stderr(), '', 'nothing on stderr')
})

test('readers that stop for good after Node let go are reset after the grace, nothing stays pinned, and the process ends after close()', async (t) => {
  const server = await startServer(t, { keepAliveTimeout: 200 })
  // 2 MiB: the op finished, Node lets go (at once, or 200 ms later); each client stops at
  // 256 KiB, with most of its body still in the server's socket.
  const readers = [true, false].map((close) => slowGet(server.port, '/body/1', { rate: 2 * MiB, close, stopAt: 256 * KiB, handle: true }))
  const started = Date.now()
  let stats = null
  let freedMs = -1
  while (Date.now() - started < GRACE_MS + 8000) {
    await sleep(100)
    stats = await getJson(server.port, '/stats')
    if (stats.responses.sendZc === 2 && stats.inFlight.pinnedBytes === 0 && stats.inFlight.sends === 0) {
      freedMs = Date.now() - started
      break
    }
  }
  t.ok(freedMs >= GRACE_MS - 500 && freedMs <= GRACE_MS + 3000,
    `the connections were reset and their pages released ${freedMs} ms after the clients stopped (grace ${GRACE_MS} ms; ${stats.inFlight.pinnedBytes} bytes pinned now)`)
  // A paused client sees the reset when it reads again: what it has, then the end.
  for (const r of readers) r.readOn()
  for (const res of await Promise.all(readers.map((r) => Promise.race([r.done, after(3000, 'open')])))) {
    t.not(res, 'open', 'the client found its connection ended')
    if (res !== 'open') t.ok(res.got < SIZES[1], `cut short: ${describe(res)}`)
  }
  const closing = Date.now()
  server.child.kill('SIGUSR2')
  const exit = await Promise.race([server.exited, after(5000, 'running')])
  t.not(exit, 'running', `the process ended by itself (${exit === 'running' ? 'still running' : `${Date.now() - closing} ms after SIGUSR2`})`)
  if (exit !== 'running') t.same(exit, { code: 0, signal: null }, 'with status 0')
  t.equal(server.stderr(), '', 'nothing on stderr')
})
