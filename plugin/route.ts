// Where a response decides its path. Two moments decide: when the handler calls
// sendZeroCopy (chooseRoute), and when Fastify hands the body to the response after the
// onSend hooks ran (checkAtPipe). A non-null answer is the fallback reason, counted in stats.
import net from 'node:net'
import type { ServerResponse } from 'node:http'
import type { FastifyReply } from 'fastify'

export interface RouteSettings {
  threshold: number
  /** Why large bodies cannot go native in this registration (mode 'stream', no ring), or null. */
  unavailable: string | null
  /** What a socket whose SEND_ZC notifications said "copied" uses for its later bodies. */
  whenCopied: 'stream' | 'send' | 'keep'
  /** The ring can splice (IORING_OP_SPLICE and POLL_ADD): files may go native. */
  splice: boolean
}

// What the kernel taught us about a connection, kept on its socket.
const kKernelCopies = Symbol('fastify-zero-copy.kernelCopies')
const kNoSendZc = Symbol('fastify-zero-copy.noSendZc')
const kZcNext = Symbol('fastify-zero-copy.zcNext')
type Marked = net.Socket & { [kKernelCopies]?: true, [kNoSendZc]?: true, [kZcNext]?: number }

/**
 * The socket's next MSG_ZEROCOPY id: the kernel numbers a socket's zero-copy sends from 0 for
 * as long as it lives, and only the classic engine sends them, one body after another.
 */
export function zcNextOf (socket: net.Socket): number {
  return (socket as Marked)[kZcNext] ?? 0
}

export function setZcNext (socket: net.Socket, next: number): void {
  (socket as Marked)[kZcNext] = next
}

/**
 * `copied`: the kernel reported it copied (nearly) every SEND_ZC slice of a body on this
 * socket (local delivery: loopback, veth), so pinning buys nothing there.
 * `eopnotsupp`: the socket refused SEND_ZC.
 */
export function markSocket (socket: net.Socket, what: 'copied' | 'eopnotsupp'): void {
  if (what === 'copied') (socket as Marked)[kKernelCopies] = true
  else (socket as Marked)[kNoSendZc] = true
}

/** Whether a body on this socket should go by SEND_ZC (else by the ring's copying SEND). */
export function sendZcFor (socket: net.Socket, settings: RouteSettings): boolean {
  const marked = socket as Marked
  return marked[kNoSendZc] !== true && !(settings.whenCopied === 'send' && marked[kKernelCopies] === true)
}

interface HandleWithFd { fd?: number }

/** The one place that reads a socket's file descriptor; -1 when it has none (TLS, mocks). */
export function socketFd (socket: net.Socket | null | undefined): number {
  const handle = (socket as unknown as { _handle?: HandleWithFd } | null)?._handle
  return handle != null && typeof handle.fd === 'number' && handle.fd >= 0 ? handle.fd : -1
}

export function chooseRoute (reply: FastifyReply, length: number, settings: RouteSettings, kind: 'buffer' | 'file'): string | null {
  if (length < settings.threshold || length === 0) return 'below-threshold'
  if (settings.unavailable !== null) return settings.unavailable
  if (kind === 'file' && !settings.splice) return 'no-splice'
  const req = reply.request.raw
  if ('_lightMyRequest' in req) return 'inject'
  if (req.httpVersionMajor === 2) return 'http2'
  const socket = req.socket
  if (!(socket instanceof net.Socket)) return 'inject'
  if ((socket as net.Socket & { encrypted?: boolean }).encrypted === true) return 'tls'
  if (req.method === 'HEAD') return 'head'
  // Splicing a file copies nothing on the sending side, wherever the bytes are delivered.
  // Checked before the descriptor (a call into the handle, and the socket had one when it was
  // marked): on loopback this is every large buffer's answer, and it should cost no more than
  // reply.send.
  if (kind === 'buffer' && settings.whenCopied === 'stream' && (socket as Marked)[kKernelCopies] === true) return 'kernel-copies'
  if (socketFd(socket) < 0) return 'no-fd'
  return null
}

/** After onSend: the body still goes straight to this response, with its length declared. */
export function checkAtPipe (res: ServerResponse, dest: unknown, options: { end?: boolean } | undefined, length: number): string | null {
  if (dest !== res) return 'payload-wrapped' // an onSend hook piped the body elsewhere
  if (options?.end === false) return 'trailers'
  if (res.statusCode < 200 || res.statusCode === 204 || res.statusCode === 304) return 'no-body-status'
  if (res.strictContentLength) return 'strict-content-length'
  if (res.getHeader('transfer-encoding') !== undefined) return 'transfer-encoding'
  if (Number(res.getHeader('content-length')) !== length) return 'content-length-changed'
  return null
}
