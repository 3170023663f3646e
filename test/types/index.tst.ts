import Fastify, { type FastifyReply } from 'fastify'
import { expect } from 'tstyche'
import fastifyZeroCopy, { type ZeroCopyCapabilities, type ZeroCopyStats, type FastifyZeroCopyOptions, type ZeroCopyFileOptions, type ZeroCopyResponseEvent } from '../../types/index'

import { fastifyZeroCopy as named } from '../../types/index'

const app = Fastify()
app.register(fastifyZeroCopy)
app.register(fastifyZeroCopy, { threshold: 16384, mode: 'send_zc', whenCopied: 'send', sliceSize: 262144, depth: 4, pinBudget: 1 << 22 })

expect(app.register).type.not.toBeCallableWith(fastifyZeroCopy, { mode: 'fast' })
expect(app.register).type.not.toBeCallableWith(fastifyZeroCopy, { threshold: '16k' })
expect(app.register).type.not.toBeCallableWith(fastifyZeroCopy, { whenCopied: 'never' })

expect(app.zeroCopy.capabilities).type.toBe<ZeroCopyCapabilities>()
expect(app.zeroCopy.capabilities.mode).type.toBe<'send_zc' | 'send' | 'stream'>()
expect(app.zeroCopy.capabilities.reason).type.toBe<string | null>()
expect(app.zeroCopy.stats()).type.toBe<ZeroCopyStats>()
expect(app.zeroCopy.stats().inFlight.pinnedBytes).type.toBe<number>()
expect(app.zeroCopy.stats().aborted).type.toBe<{ responses: number, native: number, stream: number }>()
expect(app.zeroCopy.capabilities.threshold).type.toBe<number>()
expect(app.zeroCopy.capabilities.pinBudget).type.toBe<number | null>()
expect<ZeroCopyResponseEvent['path']>().type.toBe<'sendZc' | 'send' | 'splice' | 'sendfile' | 'stream'>()
expect<ZeroCopyResponseEvent['reason']>().type.toBe<string | null>()
app.register(fastifyZeroCopy, { bufferEtag: false })
const tags = new Map<object, string>()
app.register(fastifyZeroCopy, { bufferEtag: (body) => tags.get(body) ?? `"${body.byteLength}"` })
expect(app.register).type.not.toBeCallableWith(fastifyZeroCopy, { bufferEtag: true })
expect<FastifyZeroCopyOptions['mode']>().type.toBe<'auto' | 'send_zc' | 'send' | 'stream' | undefined>()

app.get('/', (req, reply) => {
  expect(reply.sendZeroCopy(Buffer.alloc(1))).type.toBe<FastifyReply>()
  expect(reply.sendZeroCopy(new Uint16Array(4))).type.toBe<FastifyReply>()
  expect(reply.sendZeroCopy(new DataView(new ArrayBuffer(8)))).type.toBe<FastifyReply>()
  expect(reply.sendZeroCopy).type.not.toBeCallableWith('a string')
  expect(reply.sendZeroCopy).type.not.toBeCallableWith({ some: 'object' })
  return reply.sendZeroCopy(Buffer.alloc(1))
})

app.get('/file', async (req, reply) => {
  const handle = await import('node:fs/promises').then((fsp) => fsp.open('/etc/hostname'))
  expect(reply.sendZeroCopy({ path: '/etc/hostname' })).type.toBe<FastifyReply>()
  expect(reply.sendZeroCopy({ fd: 3 }, { start: 0, end: 9 })).type.toBe<FastifyReply>()
  expect(reply.sendZeroCopy(handle, { etag: false, maxAge: 60000, immutable: true })).type.toBe<FastifyReply>()
  expect(reply.sendZeroCopy).type.not.toBeCallableWith({ path: 42 })
  expect(reply.sendZeroCopy).type.not.toBeCallableWith({ path: '/x' }, { start: '0' })
  expect(reply.sendZeroCopy).type.not.toBeCallableWith(Buffer.alloc(1), { start: 0 })
  const options: ZeroCopyFileOptions = { acceptRanges: false, cacheControl: false, lastModified: false, contentType: false }
  return reply.sendZeroCopy({ path: '/etc/hostname' }, options)
})

app.register(fastifyZeroCopy, { fileChunk: 1 << 20, fileInline: 0, etag: false, maxAge: 1000 })
expect(app.register).type.not.toBeCallableWith(fastifyZeroCopy, { etag: 'weak' })
expect(app.zeroCopy.stats().bytes.splice).type.toBe<number>()
expect(app.zeroCopy.stats().responses.sendfile).type.toBe<number>()
expect(app.register).type.not.toBeCallableWith(fastifyZeroCopy, { fileInline: '1m' })
expect(named).type.toBe(fastifyZeroCopy)
