'use strict'
// A client that goes away while the ring's fill (SPLICE file -> pipe) is stuck in a slow read:
// the response must end at once, not when the read comes back. The file is on slowfs
// (test/fixtures/slowfs.c) with reads that take 3 s and that the kernel can interrupt
// (--sync-read: each READ waits in the reading task, here an io_uring worker, so cancelling
// the request interrupts it; slowfs then answers EINTR at once).
const net = require('node:net')
const { test } = require('tap')
const { MiB, CLASSIC, getJson, spawnFixture, procFds, steadyFds, eventually, sleep } = require('./helpers')
const { mountSlowFs } = require('./slowfs')

const ROOT = process.getuid() === 0
const READ_DELAY_MS = 3000
const BOUND_MS = 1000
// The io_uring engine cancels the fill, and the kernel interrupts the read: the op's
// descriptors close at once. The classic engine's disk thread is inside sendfile's read,
// which nothing interrupts (a disk, a hard NFS mount would not answer a signal either): the
// response ends at once all the same, and the op's two duplicates close when the read is back.
const FDS_BOUND_MS = CLASSIC ? READ_DELAY_MS + BOUND_MS : BOUND_MS

/** GET on a raw socket; resolves once the response's head arrived, with the socket and the body bytes seen. */
function getHead (port, path) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let head = Buffer.alloc(0)
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`))
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk])
      const at = head.indexOf('\r\n\r\n')
      if (at < 0) return
      socket.off('data', onData)
      socket.pause()
      resolve({ socket, head: head.subarray(0, at).toString('latin1'), bodyBytes: head.length - at - 4 })
    }
    socket.on('data', onData)
    socket.on('error', reject)
  })
}

async function abortDuringSlowRead (t, { drop }) {
  const slow = await mountSlowFs(t, { files: { 'big.bin': 16 * MiB }, syncRead: true, interrupts: true })
  const server = await spawnFixture(t, 'file-server', { dir: slow.dir, drop, timing: true })
  t.equal(server.state, 'READY', server.message)
  if (drop && ROOT) t.not(server.uid, 0, `the server runs as uid ${server.uid}`)
  t.not(server.capabilities.mode, 'stream', `the native path serves (mode ${server.capabilities.mode})`)
  const baseline = await steadyFds(server.pid)
  await slow.setDelay('read', READ_DELAY_MS)
  const before = await slow.stats()

  // How we know a fill heads the round when the client goes away: the file is cold (this
  // mount is new and nothing read it), so the cached head is empty (cachestat finds none of
  // its pages) and sendfile sends nothing; the op's first round then starts on an empty pipe,
  // without a poll, with the fill at offset 0. The headers reach the client only because the
  // kernel lets a corked socket go after 200 ms: not one body byte has been spliced. And slowfs
  // holds a READ asleep, the only one this test causes.
  const { socket, head, bodyBytes } = await getHead(server.port, '/file/big.bin')
  t.match(head, /^HTTP\/1\.1 200/, 'the response started')
  t.equal(bodyBytes, 0, 'not one body byte arrived: the first fill has not come back')
  t.ok(await eventually(async () => {
    const now = await slow.stats()
    return now.asleep > 0 && now.read.requests > before.read.requests
  }, 2000), 'a READ of the file is asleep in slowfs')
  const stuck = (await getJson(server.port, '/responses')).responses.find((r) => r.url === '/file/big.bin')
  t.ok(stuck && stuck.resClosed === null, 'the server is still sending the response')

  socket.resetAndDestroy()
  const cutAt = Date.now()
  // The server's side: its response closes (the connection is gone), then the body stream,
  // once the ring has finished with it; and the op's descriptors (a dup of the socket, a dup
  // of the file, the pipe) are closed. Measured up to well past the read's delay, so that a
  // failure says how long it took.
  let fdsBackMs = -1
  const ended = await eventually(async () => {
    if (fdsBackMs < 0 && procFds(server.pid) <= baseline) fdsBackMs = Date.now() - cutAt
    const entry = (await getJson(server.port, '/responses')).responses.find((r) => r.url === '/file/big.bin')
    return entry.bodyClosed !== null && fdsBackMs >= 0
  }, READ_DELAY_MS * 3)
  const entry = (await getJson(server.port, '/responses')).responses.find((r) => r.url === '/file/big.bin')
  const after = await slow.stats()
  t.ok(ended, 'the response ended and the fds came back at all')
  t.ok(entry.resClosed !== null, 'the server saw the connection go')
  const waitedMs = entry.bodyClosed === null ? Infinity : Math.round(entry.bodyClosed - entry.resClosed)
  t.comment(`body closed ${waitedMs} ms after the response did; fds back ${fdsBackMs} ms after the reset; READs interrupted: ${after.read.interrupts - before.read.interrupts}`)
  t.ok(waitedMs < BOUND_MS, `the response's body ended ${waitedMs} ms after the client went away (< ${BOUND_MS} ms; the read takes ${READ_DELAY_MS} ms)`)
  t.ok(fdsBackMs >= 0 && fdsBackMs < FDS_BOUND_MS, `the server's fds back to baseline ${fdsBackMs} ms after the reset (< ${FDS_BOUND_MS} ms)`)
  await slow.setDelay('read', 0)
  await sleep(50)
  t.equal(await steadyFds(server.pid), baseline, 'the server\'s fds at baseline')
}

test('a client cut while the fill heading a round waits for a 3 s read: the response ends within 1 s', async (t) => {
  await abortDuringSlowRead(t, { drop: false })
})

test('the same as nobody: the response ends within 1 s', async (t) => {
  await abortDuringSlowRead(t, { drop: true })
})
