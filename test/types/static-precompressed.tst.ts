import Fastify from 'fastify'
import { expect } from 'tstyche'
import fastifyStatic, { type FastifyZeroCopyStaticOptions } from '../../types/static'

const app = Fastify()
app.register(fastifyStatic, { root: '/srv/public', preCompressed: true })
app.register(fastifyStatic, { root: '/srv/public', prefix: '/plain/', preCompressed: false, decorateReply: false })
app.register(fastifyStatic, { root: ['/srv/a', '/srv/b'], preCompressed: true, extensions: ['html'], index: 'index.html' })

expect<FastifyZeroCopyStaticOptions['preCompressed']>().type.toBe<boolean | undefined>()
expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv/public', preCompressed: 'br' })
expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv/public', preCompressed: ['br', 'gzip'] })
expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv/public', preCompressed: 1 })
