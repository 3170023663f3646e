// An application that imports fastify-zero-copy/static alone (its own program: nothing here
// imports the core's declarations): the core plugin it registers is typed all the same.
import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import fastifyStatic from '../../../types/static'

const app = Fastify()
app.register(fastifyStatic, { root: '/srv/public' })

test('app.zeroCopy, declared by the /static entry alone', () => {
  expect(app.zeroCopy.capabilities.mode).type.toBe<'send_zc' | 'send' | 'stream'>()
  expect(app.zeroCopy.stats().inFlight.pinnedBytes).type.toBe<number>()
  expect(app).type.not.toHaveProperty('zeroCopies')
})
