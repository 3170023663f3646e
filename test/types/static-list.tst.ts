import Fastify from 'fastify'
import type { Stats } from 'node:fs'
import { expect } from 'tstyche'
import serveStatic, { type ListDir, type ListFile, type ListRender, type FastifyZeroCopyStaticOptions, type ExtendedInformation } from '../../types/static'

const app = Fastify()
app.register(serveStatic, { root: '/srv', list: true })
app.register(serveStatic, { root: '/srv', list: false })
app.register(serveStatic, { root: '/srv', list: { format: 'json', names: ['index', 'index.json', '/'], jsonFormat: 'extended', extendedFolderInfo: true } })
app.register(serveStatic, { root: '/srv', list: { names: ['/'] } })
app.register(serveStatic, {
  root: '/srv',
  list: {
    format: 'html',
    extendedFolderInfo: true,
    render: (dirs, files) => {
      expect(dirs).type.toBe<ListDir[]>()
      expect(files).type.toBe<ListFile[]>()
      expect(dirs[0].href).type.toBe<string>()
      expect(dirs[0].stats).type.toBe<Stats>()
      expect(dirs[0].extendedInfo).type.toBe<ExtendedInformation | undefined>()
      return files.map((f) => f.name).join(',')
    }
  }
})

expect(app.register).type.not.toBeCallableWith(serveStatic, { root: '/srv', list: { format: 'html' } })
expect(app.register).type.not.toBeCallableWith(serveStatic, { root: '/srv', list: { format: 'xml' } })
expect(app.register).type.not.toBeCallableWith(serveStatic, { root: '/srv', list: { jsonFormat: 'full' } })
expect(app.register).type.not.toBeCallableWith(serveStatic, { root: '/srv', list: { names: 'index' } })
expect(app.register).type.not.toBeCallableWith(serveStatic, { root: '/srv', list: { extendedFolderInfo: 'yes' } })
expect(app.register).type.not.toBeCallableWith(serveStatic, { root: '/srv', list: 'yes' })

expect<ListRender>().type.toBeAssignableFrom((dirs: ListDir[], files: ListFile[]) => `${dirs.length}${files.length}`)
expect<FastifyZeroCopyStaticOptions['list']>().type.toBeAssignableFrom(true)
