'use strict'
// An async handler that calls sendZeroCopy({ path }) and does not return the reply gets the
// same response whether the path opens at once (its lookup in the dentry cache) or later
// (through the ring): the file. /proc/self/root/... paths never open at once (openat2's
// RESOLVE_CACHED refuses procfs magic links), so they take the ring's open.
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('tap')
const { MiB, sha256, startServer, request, tempDir } = require('./helpers')
const { seeded } = require('./fixtures/bodies')

test('async handler without return: the file, whether the open was immediate or not', async (t) => {
  const dir = tempDir(t)
  const sizes = [100, 64 * 1024, 3 * MiB + 7]
  const files = sizes.map((n, i) => {
    const file = path.join(dir, `f${i}.bin`)
    fs.writeFileSync(file, seeded('async', i, n))
    return { file, sha: sha256(fs.readFileSync(file)), size: n }
  })
  const { port } = await startServer(t, {
    setup (app) {
      app.get('/warm/:i', async (req, reply) => {
        reply.sendZeroCopy({ path: files[Number(req.params.i)].file })
      })
      app.get('/cold/:i', async (req, reply) => {
        reply.sendZeroCopy({ path: '/proc/self/root' + files[Number(req.params.i)].file })
      })
      app.get('/missing', async (req, reply) => {
        reply.sendZeroCopy({ path: '/proc/self/root' + path.join(dir, 'nothing') })
      })
    }
  })
  for (const how of ['warm', 'cold']) {
    for (let i = 0; i < files.length; i++) {
      const res = await request(port, `/${how}/${i}`)
      t.equal(res.status, 200, `${how} ${sizes[i]}: 200`)
      t.equal(res.length, files[i].size, `${how} ${sizes[i]}: all of it`)
      t.equal(res.sha, files[i].sha, `${how} ${sizes[i]}: exact`)
      t.equal(res.headers['content-length'], String(files[i].size))
    }
  }
  const missing = await request(port, '/missing')
  t.equal(missing.status, 404, 'a missing file opened later is still a 404')
})
