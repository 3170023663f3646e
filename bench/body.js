'use strict'
// Deterministic bodies shared by server.js and run.js: the same size always gives the same
// bytes (AES-128-CTR keystream under a fixed key), so run.js knows each body's SHA-256
// without asking the server, and a fast wrong answer can never count.
const crypto = require('node:crypto')

const KEY = Buffer.from('fastify-zero-cpy') // 16 bytes
const IV = Buffer.alloc(16)

function makeBody (size) {
  const cipher = crypto.createCipheriv('aes-128-ctr', KEY, IV)
  const out = Buffer.allocUnsafeSlow(size) // own ArrayBuffer, not from the pool
  const zeros = Buffer.alloc(Math.min(size, 1 << 20))
  let off = 0
  while (off < size) {
    const n = Math.min(zeros.length, size - off)
    const chunk = cipher.update(zeros.subarray(0, n))
    chunk.copy(out, off)
    off += chunk.length
  }
  return out
}

function sha256 (buf) {
  return crypto.createHash('sha256').update(buf).digest('hex')
}

const UNITS = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1 << 20, mb: 1 << 20, mib: 1 << 20, g: 1 << 30, gb: 1 << 30, gib: 1 << 30 }

/** "256k", "4MiB", "1048576" -> bytes. */
function parseSize (text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(String(text))
  if (m === null || !(m[2].toLowerCase() in UNITS)) throw new Error(`not a size: ${text}`)
  return Math.round(Number(m[1]) * UNITS[m[2].toLowerCase()])
}

function formatSize (bytes) {
  if (bytes >= 1 << 20 && bytes % (1 << 20) === 0) return `${bytes / (1 << 20)} MiB`
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`
  return `${bytes} B`
}

module.exports = { makeBody, sha256, parseSize, formatSize }
