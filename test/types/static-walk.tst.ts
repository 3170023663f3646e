import Fastify from 'fastify'
import { expect } from 'tstyche'
import fastifyZeroCopy from '../../types/index'
import fastifyZeroCopyStatic, { type FastifyZeroCopyStaticOptions } from '../../types/static'

const app = Fastify()
app.register(fastifyZeroCopy)
app.register(fastifyZeroCopyStatic, { root: '/srv/public' })

// How fastify-zero-copy/static opens beneath its root: openat2, the walk where it is refused, or user space without the addon.
expect(app.zeroCopy.capabilities.beneath).type.toBe<'openat2' | 'walk' | 'userspace'>()
expect(app.zeroCopy.capabilities.beneath).type.not.toBe<string>()

// containment: 'kernel' refuses to serve without the addon; 'auto' serves in user space.
expect(app.register).type.toBeCallableWith(fastifyZeroCopyStatic, { root: '/srv', containment: 'kernel' })
expect(app.register).type.toBeCallableWith(fastifyZeroCopyStatic, { root: '/srv', containment: 'auto' })
expect(app.register).type.not.toBeCallableWith(fastifyZeroCopyStatic, { root: '/srv', containment: true })
expect<FastifyZeroCopyStaticOptions['containment']>().type.toBe<'auto' | 'kernel' | undefined>()
