// fastify-zero-copy: reply.sendZeroCopy(body) over io_uring SEND_ZC, with Fastify's ordinary
// path wherever the native one cannot serve. Reads like a table of contents: options,
// capabilities, decorators.
import os from 'node:os'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { FastifyZeroCopyOptions, ZeroCopyCapabilities, ZeroCopyDecorator } from '../types/index'
import { FST_ZERO_COPY_INVALID_BODY, FST_ZERO_COPY_INVALID_OPTION, FST_ZERO_COPY_MODE_UNAVAILABLE } from './errors'
import { defaultPinBudget, probe, type Probe } from './native'
import { chooseRoute, type RouteSettings } from './route'
import { Counters } from './stats'
import { NativeBody, type SendSettings } from './body'

const KiB = 1024
const MiB = 1024 * KiB

const DEFAULTS = {
  threshold: 16 * KiB,
  sliceSize: 256 * KiB,
  depth: 4
}

const MODES = ['auto', 'send_zc', 'send', 'stream'] as const
const WHEN_COPIED = ['stream', 'send', 'keep'] as const

function integer (name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new FST_ZERO_COPY_INVALID_OPTION(name, `expected an integer from ${min} to ${max}, received ${String(value)}`)
  }
  return value
}

function readOptions (opts: FastifyZeroCopyOptions) {
  const mode = opts.mode ?? 'auto'
  if (!MODES.includes(mode)) {
    throw new FST_ZERO_COPY_INVALID_OPTION('mode', `expected one of ${MODES.join(', ')}, received ${String(mode)}`)
  }
  const whenCopied = opts.whenCopied ?? 'stream'
  if (!WHEN_COPIED.includes(whenCopied)) {
    throw new FST_ZERO_COPY_INVALID_OPTION('whenCopied', `expected one of ${WHEN_COPIED.join(', ')}, received ${String(whenCopied)}`)
  }
  return {
    mode,
    whenCopied,
    threshold: integer('threshold', opts.threshold, DEFAULTS.threshold, 0, Number.MAX_SAFE_INTEGER),
    sliceSize: integer('sliceSize', opts.sliceSize, DEFAULTS.sliceSize, 4 * KiB, 64 * MiB),
    depth: integer('depth', opts.depth, DEFAULTS.depth, 1, 64),
    pinBudget: opts.pinBudget === undefined ? undefined : integer('pinBudget', opts.pinBudget, 0, 0, Number.MAX_SAFE_INTEGER)
  }
}

/** What large bodies will use, given the machine and the requested mode. */
function resolveMode (requested: FastifyZeroCopyOptions['mode'], machine: Probe): ZeroCopyCapabilities {
  const base = { native: machine.native, ioUring: machine.ioUring, sendZc: machine.sendZc, send: machine.send, kernel: os.release() }
  const noRing = machine.reason ?? 'io_uring is not available'
  switch (requested) {
    case 'stream':
      return { ...base, mode: 'stream', reason: 'mode "stream" was configured' }
    case 'send_zc':
      if (!machine.sendZc) throw new FST_ZERO_COPY_MODE_UNAVAILABLE('send_zc', noRing)
      return { ...base, mode: 'send_zc', reason: null }
    case 'send':
      if (!machine.send) throw new FST_ZERO_COPY_MODE_UNAVAILABLE('send', noRing)
      return { ...base, mode: 'send', reason: 'mode "send" was configured' }
    default:
      if (machine.sendZc) return { ...base, mode: 'send_zc', reason: null }
      if (machine.send) return { ...base, mode: 'send', reason: noRing }
      return { ...base, mode: 'stream', reason: noRing }
  }
}

function asBuffer (body: unknown): Buffer {
  if (Buffer.isBuffer(body)) return body
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  const what = body === null ? 'null' : typeof body === 'object' ? (body.constructor?.name ?? 'object') : typeof body
  throw new FST_ZERO_COPY_INVALID_BODY(what)
}

async function fastifyZeroCopy (fastify: FastifyInstance, opts: FastifyZeroCopyOptions): Promise<void> {
  const options = readOptions(opts)
  const machine = probe()
  const capabilities = Object.freeze(resolveMode(options.mode, machine))
  const binding = capabilities.mode === 'stream' ? null : machine.binding
  if (binding !== null) binding.setPinBudget(options.pinBudget ?? defaultPinBudget())

  const counters = new Counters(machine.binding)
  const route: RouteSettings = {
    threshold: options.threshold,
    unavailable: binding === null ? (options.mode === 'stream' ? 'mode-stream' : 'native-unavailable') : null,
    whenCopied: options.whenCopied
  }
  const send: SendSettings | null = binding === null
    ? null
    : { binding, zc: capabilities.mode === 'send_zc', sliceSize: options.sliceSize, depth: options.depth, counters, route }

  const decorator: ZeroCopyDecorator = { capabilities, stats: () => counters.snapshot() }
  fastify.decorate('zeroCopy', decorator)
  fastify.decorateReply('sendZeroCopy', function sendZeroCopy (this: FastifyReply, body: unknown): FastifyReply {
    const buffer = asBuffer(body)
    if (!this.hasHeader('content-type')) this.header('content-type', 'application/octet-stream')
    const reason = chooseRoute(this, buffer.length, route)
    if (reason !== null || send === null) {
      counters.stream(reason ?? 'native-unavailable', this.request.method === 'HEAD' ? 0 : buffer.length)
      return this.send(buffer)
    }
    this.header('content-length', String(buffer.length))
    return this.send(new NativeBody(send, buffer, this))
  })
}

const plugin = fp(fastifyZeroCopy, { fastify: '5.x', name: 'fastify-zero-copy' }) as ReturnType<typeof fp> & {
  default: unknown
  fastifyZeroCopy: unknown
}
plugin.default = plugin
plugin.fastifyZeroCopy = plugin
export = plugin
