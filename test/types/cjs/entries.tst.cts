// Both entries required from CommonJS (.cts, module nodenext): the package's exports map
// (its "require" condition, by the package's self-reference) chooses the declarations.
import Fastify = require('fastify')
import { expect, test } from 'tstyche'
import fastifyZeroCopy = require('fastify-zero-copy')
import fastifyStatic = require('fastify-zero-copy/static')

const app = Fastify()

test('require(\'fastify-zero-copy\'): the callable plugin with its named export', () => {
  expect(app.register).type.toBeCallableWith(fastifyZeroCopy, { threshold: 16384 })
  expect(fastifyZeroCopy.fastifyZeroCopy).type.toBe(fastifyZeroCopy.default)
})

test('require(\'fastify-zero-copy/static\'): the plugin, @fastify/static\'s names, its errors', () => {
  expect(app.register).type.toBeCallableWith(fastifyStatic, { root: '/srv', maxAge: '1 day' })
  expect(fastifyStatic.fastifyStatic).type.toBe(fastifyStatic.default)
  expect<fastifyStatic.FastifyStaticOptions>().type.toBe<fastifyStatic.FastifyZeroCopyStaticOptions>()
  expect(new fastifyStatic.errors.FST_STATIC_FORBIDDEN_PATH().statusCode).type.toBe<403>()
})
