'use strict'
// The names an application written for @fastify/static depends on: its error codes (an error
// handler that checks FST_STATIC_FORBIDDEN_PATH), its `errors` export (classes for instanceof),
// and its plugin name (a plugin that declares `dependencies: ['@fastify/static']`).
const path = require('node:path')
const { test } = require('tap')
const Fastify = require('fastify')
const fp = require('fastify-plugin')
const serveStatic = require('../dist/plugin/static')
const upstreamErrors = require('@fastify/static/lib/errors.js')
const { buildTree, rawRequest, sha256 } = require('./static-tree')

/** An application whose error handler answers its own way for @fastify/static's 403. */
async function appWithHandler (t, tree, opts = {}) {
  const app = Fastify({ logger: false })
  app.setErrorHandler((err, req, reply) => {
    if (err.code === 'FST_STATIC_FORBIDDEN_PATH') {
      reply.code(403).send({ own: 'forbidden', isClass: err instanceof serveStatic.errors.FST_STATIC_FORBIDDEN_PATH })
      return
    }
    reply.send(err)
  })
  await app.register(serveStatic, { root: tree.root, prefix: '/assets/', ...opts })
  app.get('/own/climb', (req, reply) => reply.sendFile('../canary.txt'))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return app.server.address().port
}

test('a custom error handler that checks FST_STATIC_FORBIDDEN_PATH sees the 403s', async (t) => {
  const tree = buildTree(t)
  const port = await appWithHandler(t, tree)
  for (const target of ['/assets/sub/../../canary.txt', '/assets/%2e%2e/canary.txt', '/own/climb']) {
    const res = await rawRequest(port, target)
    t.equal(res.status, 403, target)
    t.same(JSON.parse(res.body.toString()), { own: 'forbidden', isClass: true }, `${target}: the application's answer`)
  }
  const deny = await appWithHandler(t, tree, { dotfiles: 'deny' })
  const res = await rawRequest(deny, '/assets/.env')
  t.equal(res.status, 403, 'dotfiles: deny')
  t.same(JSON.parse(res.body.toString()), { own: 'forbidden', isClass: true }, 'dotfiles: deny: the application\'s answer')
  t.notOk(res.body.includes(tree.canary), 'no canary')
})

test('errors: @fastify/static\'s export, with its codes, messages, statuses and classes', async (t) => {
  const ours = serveStatic.errors
  for (const [name, Upstream] of Object.entries(upstreamErrors)) {
    t.type(ours[name], 'function', `${name} exported`)
    const args = ['root', 'is required']
    const a = new ours[name](...args)
    const b = new Upstream(...args)
    t.equal(a.code, b.code, `${name}: code`)
    t.equal(a.message, b.message, `${name}: message`)
    t.equal(a.statusCode, b.statusCode, `${name}: status`)
    t.equal(a instanceof TypeError, b instanceof TypeError, `${name}: TypeError or not`)
  }
  const esm = await import('../plugin/static/esm.mjs')
  t.equal(esm.errors, ours, 'the ES module exports the same errors')
})

test('registration errors carry @fastify/static\'s codes for the checks it makes', async (t) => {
  const tree = buildTree(t)
  const cases = [
    [{}, 'FST_STATIC_INVALID_OPTION', /"root" option is required/],
    [{ root: 'relative/dir' }, 'FST_STATIC_INVALID_OPTION', /"root" option must be an absolute path/],
    [{ root: [] }, 'FST_STATIC_INVALID_OPTION', /"root" option array requires one or more paths/],
    [{ root: [tree.root, tree.root] }, 'FST_STATIC_INVALID_OPTION', /"root" option array contains duplicate paths/],
    [{ root: 42 }, 'FST_STATIC_INVALID_OPTION_VALUE', /"root" option must be a string or array of strings/],
    [{ root: path.join(tree.root, 'small.txt') }, 'FST_STATIC_INVALID_OPTION', /"root" option must be a directory/],
    [{ root: [tree.root, tree.root2], list: true }, 'FST_STATIC_MULTIROOT_LIST_CONFLICT', /multi-root with list option is not supported/],
    [{ root: tree.root, list: { format: 'xml' } }, 'FST_STATIC_INVALID_OPTION_VALUE', /"list.format" option must be json or html/],
    [{ root: tree.root, list: { format: 'html' } }, 'FST_STATIC_INVALID_OPTION_VALUE', /"list.render" option must be a function and is required with html format/]
  ]
  for (const [opts, code, message] of cases) {
    const app = Fastify({ logger: false })
    await t.rejects(app.register(serveStatic, opts).ready(), { code, message }, JSON.stringify(opts))
    await app.close()
  }
})

test('a plugin that declares dependencies: [\'@fastify/static\'] finds this one registered', async (t) => {
  const tree = buildTree(t)
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  const dependent = fp(async (instance) => {
    instance.get('/dependent', (req, reply) => reply.sendFile('small.txt'))
  }, { name: 'needs-static', dependencies: ['@fastify/static'] })
  await app.register(serveStatic, { root: tree.root, prefix: '/assets/' })
  await app.register(dependent)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.ok(app.hasPlugin('@fastify/static'), 'hasPlugin(\'@fastify/static\')')
  const res = await rawRequest(app.server.address().port, '/dependent')
  t.equal(res.status, 200)
  t.equal(sha256(res.body), sha256(tree.files['small.txt']))

  // Without it, the dependency is missing as it would be without @fastify/static.
  const bare = Fastify({ logger: false })
  t.teardown(() => bare.close())
  await t.rejects(bare.register(dependent).ready(), { code: 'FST_ERR_PLUGIN_DEPENDENCY_NOT_REGISTERED', message: /@fastify\/static/ })
})

test('@fastify/static and this plugin in one application (one decorating the reply): both serve', async (t) => {
  const tree = buildTree(t)
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(require('@fastify/static'), { root: tree.root, prefix: '/theirs/' })
  await app.register(serveStatic, { root: tree.root, prefix: '/ours/', decorateReply: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = app.server.address().port
  for (const target of ['/theirs/big.bin', '/ours/big.bin']) {
    const res = await rawRequest(port, target)
    t.equal(res.status, 200, target)
    t.equal(sha256(res.body), sha256(tree.files['big.bin']), `${target}: the bytes`)
  }
  // Both under one name, as two registrations of @fastify/static would be: the reply's
  // decorators are one plugin's (the other's decorateReply: false), as there.
  t.ok(app.hasPlugin('@fastify/static'))
})
