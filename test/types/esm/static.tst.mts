// fastify-zero-copy/static imported from an ES module (.mts, module nodenext): the package's
// own exports map (its "types" condition, by the package's self-reference) chooses the
// declarations, as it does for an application's import.
import Fastify, { type FastifyPluginAsync, type FastifyReply } from 'fastify'
import { expect, test } from 'tstyche'
import fastifyStatic, { errors, fastifyStatic as named, fastifyZeroCopyStatic, type FastifyStaticOptions, type FastifyZeroCopyStaticOptions, type SendOptions } from 'fastify-zero-copy/static'
import fastifyZeroCopy, { fastifyZeroCopy as namedCore, type FastifyZeroCopyOptions } from 'fastify-zero-copy'

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

test('the ES module entries are typed as ES modules: their named exports and @fastify/static\'s names', () => {
  expect(namedCore).type.toBe(fastifyZeroCopy.fastifyZeroCopy)
  expect(app.register).type.toBeCallableWith(fastifyZeroCopy, { threshold: 16384 } satisfies FastifyZeroCopyOptions)
  expect(errors.FST_STATIC_FORBIDDEN_PATH).type.toBe(fastifyStatic.errors.FST_STATIC_FORBIDDEN_PATH)
  expect<FastifyStaticOptions>().type.toBe<FastifyZeroCopyStaticOptions>()
  expect<SendOptions['maxAge']>().type.toBe<string | number | undefined>()
})
