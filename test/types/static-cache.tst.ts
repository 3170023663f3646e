import Fastify from 'fastify'
import { expect } from 'tstyche'
import fastifyStatic, { type FastifyZeroCopyStaticOptions, type OpenFileCacheOptions } from '../../types/static'

const app = Fastify()
app.register(fastifyStatic, { root: '/srv/public' })
app.register(fastifyStatic, { root: '/srv/public', openFileCache: false })
app.register(fastifyStatic, { root: '/srv/public', openFileCache: true })
app.register(fastifyStatic, { root: '/srv/public', openFileCache: {} })
app.register(fastifyStatic, { root: '/srv/public', openFileCache: { max: 1000, validMs: 500, inactiveMs: 60000 } })

expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv/public', openFileCache: 256 })
expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv/public', openFileCache: { max: '256' } })
expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv/public', openFileCache: { valid: 1000 } })

expect<FastifyZeroCopyStaticOptions['openFileCache']>().type.toBe<boolean | OpenFileCacheOptions | undefined>()
expect<OpenFileCacheOptions['validMs']>().type.toBe<number | undefined>()
