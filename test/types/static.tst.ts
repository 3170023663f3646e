// types/static.d.ts as a CommonJS consumer sees it (`import x = require()` and the default
// import through esModuleInterop): the plugin's options, the reply decorators and the exports.
// The ES module entry has its own file: test/types/esm/static.tst.ts.
import Fastify, { type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Stats } from 'node:fs'
import { describe, expect, test } from 'tstyche'
import fastifyStatic, { fastifyStatic as named, fastifyZeroCopyStatic, type FastifyStaticOptions, type FastifyZeroCopyStaticOptions, type SendFileOptions, type SendOptions } from '../../types/static'
import required = require('../../types/static')

const app = Fastify()

describe('the exports', () => {
  test('default, named and require() are one plugin taking the options', () => {
    expect(named).type.toBe<FastifyPluginAsync<FastifyZeroCopyStaticOptions>>()
    expect(fastifyZeroCopyStatic).type.toBe<FastifyPluginAsync<FastifyZeroCopyStaticOptions>>()
    expect(required.fastifyStatic).type.toBe(named)
    expect(required.default).type.toBe(fastifyZeroCopyStatic)
    // The default import is the namespace's `default` (esModuleInterop reads it first); the
    // require() form is the callable plugin itself, with the namespace's members.
    expect(fastifyStatic).type.toBe<FastifyPluginAsync<FastifyZeroCopyStaticOptions>>()
    expect(required).type.toBeCallableWith(app, { root: '/srv' })
    expect(app.register).type.toBeCallableWith(fastifyStatic, { root: '/srv' })
    expect(app.register).type.toBeCallableWith(named, { root: '/srv' })
    expect(app.register).type.toBeCallableWith(required, { root: '/srv' })
    expect(app.register).type.toBeCallableWith(required.default, { root: '/srv' })
  })
})

describe('options', () => {
  test('root: a string, a URL, or an array of them', () => {
    expect(app.register).type.toBeCallableWith(fastifyStatic, { root: '/srv/public' })
    expect(app.register).type.toBeCallableWith(fastifyStatic, { root: new URL('file:///srv/public') })
    expect(app.register).type.toBeCallableWith(fastifyStatic, { root: ['/srv/a', new URL('file:///srv/b')] })
    expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: 42 })
    expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: [42] })
  })

  test('routing options', () => {
    expect(app.register).type.toBeCallableWith(fastifyStatic, {
      root: '/srv',
      prefix: '/assets/',
      prefixAvoidTrailingSlash: true,
      serve: false,
      decorateReply: false,
      schemaHide: false,
      redirect: true,
      wildcard: false,
      globIgnore: ['**/*.map', '.git/**'],
      constraints: { host: 'example.com' },
      logLevel: 'warn'
    })
    expect(app.register).type.toBeCallableWith(fastifyStatic, { root: '/srv', wildcard: false, globIgnore: '*.map' })
    expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv', prefix: 1 })
    expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv', wildcard: 'no' })
    expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv', globIgnore: [1] })
    expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv', logLevel: 'loud' })
  })

  test('setHeaders and allowedPath receive what the plugin passes', () => {
    expect<FastifyZeroCopyStaticOptions['setHeaders']>().type.toBe<((reply: FastifyReply, path: string, stat: Stats) => void) | undefined>()
    expect<FastifyZeroCopyStaticOptions['allowedPath']>().type.toBe<((pathName: string, root: string, request: FastifyRequest) => boolean) | undefined>()
    expect(app.register).type.toBeCallableWith(fastifyStatic, {
      root: '/srv',
      setHeaders (reply: FastifyReply, path: string, stat: Stats) { reply.header('x-size', String(stat.size) + path) },
      allowedPath: (pathName: string, root: string, request: FastifyRequest) => pathName.startsWith(root) && request.method === 'GET'
    })
    expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv', allowedPath: (p: string) => p })
    expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv', setHeaders: (res: number) => res })
  })

  test('the options @fastify/static 10 added: onFile, serveDotFiles, suppressWarning', () => {
    expect<FastifyZeroCopyStaticOptions['onFile']>().type.toBe<((path: string, stat: Stats) => void | Promise<void>) | undefined>()
    expect(app.register).type.toBeCallableWith(fastifyStatic, {
      root: '/srv',
      serveDotFiles: true,
      suppressWarning: true,
      async onFile (path: string, stat: Stats) { if (stat.size > 1e9) throw new Error(path) }
    })
    expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv', serveDotFiles: 'yes' })
    expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv', onFile: (path: number) => path })
  })

  test('what a response may override, at registration', () => {
    expect(app.register).type.toBeCallableWith(fastifyStatic, {
      root: '/srv',
      acceptRanges: false,
      cacheControl: false,
      contentType: false,
      dotfiles: 'deny',
      etag: false,
      extensions: ['html', 'htm'],
      immutable: true,
      index: ['index.html', 'default.html'],
      lastModified: false,
      maxAge: '1d',
      symlinks: 'none'
    })
    expect(app.register).type.toBeCallableWith(fastifyStatic, { root: '/srv', index: false, maxAge: 60000 })
    expect(app.register).type.toBeCallableWith(fastifyStatic, { root: '/srv', index: 'home.html' })
    expect<SendOptions['dotfiles']>().type.toBe<'allow' | 'deny' | 'ignore' | undefined>()
    expect<SendOptions['symlinks']>().type.toBe<'inside' | 'none' | 'follow' | undefined>()
    expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv', dotfiles: 'show' })
    expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv', symlinks: true })
    expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv', maxAge: true })
    expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv', extensions: 'html' })
    expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv', etag: 'weak' })
  })

  test('an unknown option is refused', () => {
    expect(app.register).type.not.toBeCallableWith(fastifyStatic, { root: '/srv', rootDir: '/srv' })
  })
})

describe('decorators', () => {
  test('reply.sendFile(name, [root], [options])', () => {
    app.get('/', (req, reply) => {
      expect(reply.sendFile('a.html')).type.toBe<FastifyReply>()
      expect(reply.sendFile('a.html', '/other/root')).type.toBe<FastifyReply>()
      expect(reply.sendFile('a.html', { maxAge: '1h', root: '/other/root' })).type.toBe<FastifyReply>()
      expect(reply.sendFile('a.html', '/other/root', { dotfiles: 'allow', immutable: true })).type.toBe<FastifyReply>()
      expect(reply.sendFile).type.not.toBeCallableWith()
      expect(reply.sendFile).type.not.toBeCallableWith(42)
      expect(reply.sendFile).type.not.toBeCallableWith('a.html', 42)
      expect(reply.sendFile).type.not.toBeCallableWith('a.html', { root: 42 })
      expect(reply.sendFile).type.not.toBeCallableWith('a.html', { dotfiles: 'show' })
      expect(reply.sendFile).type.not.toBeCallableWith('a.html', '/root', '/again')
      return reply.sendFile('a.html')
    })
  })

  test('reply.download(name, [filename], [options])', () => {
    app.get('/dl', (req, reply) => {
      expect(reply.download('report.pdf')).type.toBe<FastifyReply>()
      expect(reply.download('report.pdf', 'Q3 report.pdf')).type.toBe<FastifyReply>()
      expect(reply.download('report.pdf', { root: '/other/root', cacheControl: false })).type.toBe<FastifyReply>()
      expect(reply.download('report.pdf', 'Q3 report.pdf', { root: '/other/root' })).type.toBe<FastifyReply>()
      expect(reply.download).type.not.toBeCallableWith()
      expect(reply.download).type.not.toBeCallableWith('report.pdf', 42)
      expect(reply.download).type.not.toBeCallableWith('report.pdf', { etag: 'no' })
      return reply.download('report.pdf')
    })
  })

  test('SendFileOptions: the response options and root', () => {
    expect<SendFileOptions>().type.toBeAssignableTo<SendOptions>()
    expect<SendFileOptions['root']>().type.toBe<string | undefined>()
    expect<FastifyZeroCopyStaticOptions>().type.toBeAssignableTo<SendOptions>()
  })
})

describe('@fastify/static\'s names', () => {
  test('FastifyStaticOptions and SendOptions, under @fastify/static\'s names', () => {
    expect<FastifyStaticOptions>().type.toBe<FastifyZeroCopyStaticOptions>()
    expect<required.FastifyStaticOptions>().type.toBe<FastifyZeroCopyStaticOptions>()
    expect<required.SendOptions>().type.toBe<SendOptions>()
    expect(app.register).type.toBeCallableWith(fastifyStatic, { root: '/srv', maxAge: '2 hours' } satisfies FastifyStaticOptions)
  })

  test('sendFile(name, undefined, options) and download(name, undefined, options), as there', () => {
    app.get('/undefined', (req, reply) => {
      expect(reply.sendFile('a.html', undefined, { cacheControl: false })).type.toBe<FastifyReply>()
      expect(reply.download('a.pdf', undefined, { root: '/other/root' })).type.toBe<FastifyReply>()
      expect(reply.sendFile).type.not.toBeCallableWith('a.html', undefined, { dotfiles: 'show' })
      return reply.sendFile('a.html', undefined, {})
    })
  })

  test('errors: @fastify/static\'s classes, each error its code', () => {
    expect(new required.errors.FST_STATIC_FORBIDDEN_PATH().code).type.toBe<'FST_STATIC_FORBIDDEN_PATH'>()
    expect(new required.errors.FST_STATIC_INVALID_OPTION('root', 'is required')).type.toBeAssignableTo<Error>()
    expect(required.errors).type.not.toHaveProperty('FST_STATIC_NOT_A_CODE')
  })
})
