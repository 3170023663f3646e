'use strict'
// A FileHandle or { fd } given to sendZeroCopy is the caller's: the plugin reads only through
// a reference of its own, taken at the call. So a handle the handler drops (and the garbage
// collector closes) or an fd the caller closes at once cannot make the response read another
// file that happens to get the same descriptor number. Each case reuses the number for real
// (asserted) before the body is read, on the native path and on Fastify's ordinary path.
const fs = require('node:fs')
const path = require('node:path')
const os = require('node:os')
const v8 = require('node:v8')
const vm = require('node:vm')
const { test } = require('tap')
const { MiB, sha256, startServer, request, eventually, openFds } = require('./helpers')
const { seeded } = require('./fixtures/bodies')

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-own-'))
const size = 32 * MiB
const wanted = path.join(dir, 'wanted.bin')
const other = path.join(dir, 'other.bin')
fs.writeFileSync(wanted, seeded('wanted', 0, size))
fs.writeFileSync(other, seeded('other', 0, size))
const wantedSha = sha256(fs.readFileSync(wanted))

/** Whether descriptor number `fd` is open now (and on which file). */
function target (fd) {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`)
  } catch {
    return null
  }
}

/**
 * An async onSend hook that runs between sendZeroCopy and the pipe: it lets the collector close
 * any dropped FileHandle, then opens `other` until the number `fd()` is taken by it.
 */
function reuseNumber (held, fd) {
  return async () => {
    for (let i = 0; i < 10 && target(fd()) === wanted; i++) {
      gc()
      await new Promise((resolve) => setImmediate(resolve))
    }
    for (let i = 0; i < 64 && target(fd()) !== other; i++) held.push(fs.openSync(other, 'r'))
  }
}

for (const via of ['socket', 'inject']) {
  for (const kind of ['dropped FileHandle', 'fd closed at once']) {
    test(`${kind} (${via}): the response is the file given, not the one that took its number`, async (t) => {
      const held = []
      let number = -1
      const reused = []
      t.teardown(() => { for (const fd of held) fs.closeSync(fd) })
      const { app, port } = await startServer(t, {
        setup (app) {
          app.addHook('onSend', async (req) => {
            if (req.url !== '/file') return
            await reuseNumber(held, () => number)()
            reused.push(target(number) === other)
          })
          app.get('/warm', (req, reply) => reply.sendZeroCopy({ path: other }))
          app.get('/file', async (req, reply) => {
            if (kind === 'dropped FileHandle') {
              const handle = await fs.promises.open(wanted)
              number = handle.fd
              // The handle is referenced by nothing but this call's argument.
              return reply.sendZeroCopy(handle)
            }
            number = fs.openSync(wanted, 'r')
            reply.sendZeroCopy({ fd: number })
            fs.closeSync(number)
            return reply
          })
        }
      })
      await request(port, '/warm') // whatever the plugin opens once per process (the mount table)
      const before = openFds()
      let res
      if (via === 'inject') {
        const out = await app.inject({ url: '/file' })
        res = { status: out.statusCode, length: out.rawPayload.length, sha: sha256(out.rawPayload) }
      } else {
        res = await request(port, '/file')
      }
      t.same(reused, [true], `the number ${number} was taken by the other file before the body was read`)
      t.equal(res.status, 200)
      t.equal(res.length, size, 'all of it')
      t.equal(res.sha, wantedSha, 'the bytes of the file given')
      for (const fd of held.splice(0)) fs.closeSync(fd)
      t.ok(await eventually(() => openFds() <= before), 'the plugin closed its own reference')
      if (via === 'socket') {
        const stats = app.zeroCopy.stats()
        t.equal(stats.bytes.stream, 0, 'the native path carried it')
      }
    })
  }
}

test('a FileHandle stays the caller\'s: open and usable after the response', async (t) => {
  const handle = await fs.promises.open(wanted)
  t.teardown(() => handle.close())
  const { port } = await startServer(t, {
    setup (app) { app.get('/file', (req, reply) => reply.sendZeroCopy(handle)) }
  })
  for (let i = 0; i < 3; i++) t.equal((await request(port, '/file')).sha, wantedSha, `response ${i} exact`)
  const { bytesRead } = await handle.read(Buffer.alloc(16), 0, 16, 0)
  t.equal(bytesRead, 16, 'the handle still reads')
})

test('cleanup', async () => fs.rmSync(dir, { recursive: true, force: true }))
