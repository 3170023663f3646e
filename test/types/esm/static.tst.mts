// fastify-zero-copy/static imported from an ES module (.mts, module nodenext): the package's
// own exports map (its "types" condition, by the package's self-reference) chooses the
// declarations, as it does for an application's import.
import Fastify, { type FastifyPluginAsync, type FastifyReply } from 'fastify'
import { expect, test } from 'tstyche'
import fastifyStatic, { fastifyStatic as named, fastifyZeroCopyStatic, type FastifyZeroCopyStaticOptions } from 'fastify-zero-copy/static'

const app = Fastify()

test('the default and named imports of the ES module entry', () => {
  expect(app.register).type.toBeCallableWith(fastifyStatic, { root: '/srv/public', prefix: '/assets/' })
  expect(app.register).type.toBeCallableWith(named, { root: new URL('file:///srv/public') })
  expect(named).type.toBe<FastifyPluginAsync<FastifyZeroCopyStaticOptions>>()
  expect(fastifyZeroCopyStatic).type.toBe(named)
  expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv', dotfiles: 'show' })
})

test('the decorators are declared for an ES module too', () => {
  app.get('/', (req, reply) => {
    expect(reply.sendFile('a.html', '/root', { maxAge: 1000 })).type.toBe<FastifyReply>()
    expect(reply.download('a.pdf', 'b.pdf')).type.toBe<FastifyReply>()
    return reply.sendFile('a.html')
  })
})
