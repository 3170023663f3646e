'use strict'
// The torture run's client side: HTTP/1.1 over a plain net.Socket, so that a client can
// pipeline, stop reading, read slowly, cut at a byte of its choosing (FIN or RST) and write
// garbage after its request, and so that whatever the server wrote is seen as it arrived.
//
// A Conn is one connection; send(request, hooks) writes a request at once (several sends
// without waiting pipeline them) and resolves, in order, with what came back:
//   { status, headers, declared, got, complete, cut, aborted, stuck, noResponse, error }
// hooks.onHead(entry) and hooks.onBody(entry, chunk) see the response as it arrives (the
// body checker is installed by onHead as entry.sink(chunk)).
const net = require('node:net')

const HEAD_LIMIT = 64 * 1024

class Conn {
  constructor (port) {
    this.port = port
    this.pending = []
    this.headBuf = null
    this.closed = false
    this.error = null
    this.extraBytes = 0 // bytes the server sent with no request waiting (a 400 after garbage)
    this.socket = net.connect({ port, host: '127.0.0.1' })
    this.socket.setNoDelay(true)
    this.socket.on('data', (chunk) => this.onData(chunk))
    this.socket.on('error', (err) => { if (!this.error) this.error = err })
    this.socket.on('close', () => this.onClose())
    this.used = 0
  }

  send (req, hooks = {}) {
    const entry = {
      req,
      hooks,
      status: 0,
      headers: null,
      declared: -1,
      remaining: -1,
      got: 0,
      sink: null,
      lastActivity: Date.now(),
      paused: false, // the client itself is not reading (stall, slow read): not stuck
      aborted: false,
      stuck: false
    }
    entry.done = new Promise((resolve) => { entry.resolve = resolve })
    this.pending.push(entry)
    this.used++
    if (this.closed) {
      this.settle(entry, { noResponse: true })
    } else {
      this.socket.write(requestText(req))
    }
    return entry
  }

  onData (chunk) {
    let data = chunk
    let off = 0
    while (off < data.length) {
      const e = this.pending[0]
      if (e === undefined) {
        this.extraBytes += data.length - off
        return
      }
      e.lastActivity = Date.now()
      if (e.headers === null) {
        const piece = data.subarray(off)
        this.headBuf = this.headBuf === null ? piece : Buffer.concat([this.headBuf, piece])
        const end = this.headBuf.indexOf('\r\n\r\n')
        if (end < 0) {
          if (this.headBuf.length > HEAD_LIMIT) this.fail(e, 'a response head of more than 64 KiB')
          return
        }
        const rest = this.headBuf.subarray(end + 4)
        const headText = this.headBuf.subarray(0, end).toString('latin1')
        const parsed = parseHead(headText)
        this.headBuf = null
        if (parsed === null) {
          this.fail(e, `a malformed response head: ${JSON.stringify(headText.slice(0, 200))}`)
          return
        }
        if (parsed.status >= 100 && parsed.status < 200) { // interim response: the real one follows
          data = rest
          off = 0
          continue
        }
        e.status = parsed.status
        e.headers = parsed.headers
        const bodyless = e.req.method === 'HEAD' || e.status === 204 || e.status === 304
        if (bodyless) e.remaining = 0
        else if (e.headers['transfer-encoding'] !== undefined) e.remaining = -2 // chunked: read to the close, not checked
        else if (e.headers['content-length'] !== undefined) e.remaining = Number(e.headers['content-length'])
        else e.remaining = -1
        e.declared = bodyless ? 0 : e.remaining
        if (e.hooks.onHead) e.hooks.onHead(e)
        if (this.closed) return
        data = rest
        off = 0
        if (e.remaining === 0) this.finish(e)
        continue
      }
      const n = e.remaining < 0 ? data.length - off : Math.min(e.remaining, data.length - off)
      const piece = data.subarray(off, off + n)
      off += n
      e.got += n
      if (e.remaining > 0) e.remaining -= n
      if (e.sink) e.sink(piece)
      if (e.hooks.onBody) e.hooks.onBody(e, piece)
      if (this.closed) return
      if (e.remaining === 0) this.finish(e)
    }
  }

  finish (e) {
    this.pending.shift()
    this.settle(e, { complete: true })
  }

  fail (e, message) {
    e.protocolError = message
    this.destroy()
  }

  settle (e, how) {
    e.resolve({
      status: e.status,
      headers: e.headers,
      declared: e.declared,
      got: e.got,
      complete: Boolean(how.complete),
      // the server (or the network) ended the connection before the declared length
      cut: !how.complete && e.headers !== null && !e.aborted && e.remaining > 0,
      // a response without a length (or chunked, not decoded here) ends with its connection
      endedByClose: !how.complete && e.headers !== null && e.remaining < 0,
      aborted: e.aborted,
      stuck: e.stuck,
      noResponse: Boolean(how.noResponse) || (e.headers === null && !how.complete),
      error: this.error ? (this.error.code || this.error.message) : null,
      protocolError: e.protocolError || null,
      entry: e
    })
  }

  onClose () {
    if (this.closed) return
    this.closed = true
    const left = this.pending.splice(0)
    for (const e of left) this.settle(e, {})
  }

  /** Ends the connection now: with RST when `reset`, else FIN. */
  destroy (reset = false) {
    if (reset && typeof this.socket.resetAndDestroy === 'function' && this.socket.readyState !== 'opening') this.socket.resetAndDestroy()
    else this.socket.destroy()
    this.onClose()
  }
}

function requestText (req) {
  let text = `${req.method} ${req.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`
  for (const [k, v] of Object.entries(req.headers || {})) text += `${k}: ${v}\r\n`
  return text + '\r\n'
}

function parseHead (text) {
  const lines = text.split('\r\n')
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0])
  if (m === null) return null
  const headers = {}
  for (let i = 1; i < lines.length; i++) {
    const at = lines[i].indexOf(':')
    if (at <= 0) return null
    const name = lines[i].slice(0, at).trim().toLowerCase()
    const value = lines[i].slice(at + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
  }
  return { status: Number(m[1]), headers }
}

module.exports = { Conn }
