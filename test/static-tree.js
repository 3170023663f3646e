'use strict'
// The tree the fastify-zero-copy/static tests serve, built fresh under a temporary directory:
// <dir>/root (served), <dir>/root2 (a second root), <dir>/outside (never served: its files
// hold a canary marker no response may carry).
const crypto = require('node:crypto')
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const { tempDir, sha256 } = require('./helpers')

const KiB = 1024

function bytes (seed, n) {
  const key = crypto.createHash('sha256').update(`static:${seed}`).digest()
  return crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n))
}

/** Builds the tree; returns { dir, root, root2, outside, canary, files: name -> Buffer }. */
function buildTree (t) {
  const dir = tempDir(t, 0o755)
  const root = path.join(dir, 'root')
  const root2 = path.join(dir, 'root2')
  const outside = path.join(dir, 'outside')
  const canary = Buffer.from(`CANARY-${crypto.randomBytes(16).toString('hex')}-CANARY\n`)
  const files = {}
  const put = (base, name, content) => {
    const file = path.join(base, name)
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 })
    fs.writeFileSync(file, content, { mode: 0o644 })
    if (base === root) files[name] = content
    return content
  }
  put(outside, 'canary.txt', canary)
  put(outside, 'dir/secret.txt', canary)
  put(outside, 'index.html', canary)
  put(dir, 'canary.txt', canary) // right beside the root: `root/../canary.txt`
  put(root, 'index.html', Buffer.from('<h1>root index</h1>\n'))
  put(root, 'big.bin', bytes('big', 300 * KiB + 7)) // above the threshold: the native path
  put(root, 'small.txt', Buffer.from('small file\n'))
  put(root, 'empty.txt', Buffer.alloc(0))
  put(root, 'sub/index.html', Buffer.from('<h1>sub index</h1>\n'))
  put(root, 'sub/deep/x.bin', bytes('deep', 64 * KiB + 1))
  put(root, 'noindex/file.txt', Buffer.from('in a directory without an index\n'))
  put(root, 'with space.txt', Buffer.from('a name with a space\n'))
  put(root, '100%.txt', Buffer.from('a name with a percent sign\n'))
  put(root, 'ünïcødé-😀.txt', Buffer.from('a unicode name\n'))
  put(root, 'back\\slash.txt', Buffer.from('a backslash is a character of a name\n'))
  put(root, 'page.html', Buffer.from('<p>page</p>\n'))
  put(root, 'Case.txt', Buffer.from('letter case\n'))
  put(root, '.env', canary)
  put(root, '.git/config', canary)
  put(root, '.hidden/file.txt', canary)
  put(root, 'sub/.secret', canary)
  put(root2, 'only2.txt', Buffer.from('only in the second root\n'))
  put(root2, 'small.txt', Buffer.from('the second root\'s small.txt\n'))
  fs.symlinkSync('big.bin', path.join(root, 'link-in'))
  fs.symlinkSync('../sub/index.html', path.join(root, 'noindex', 'link-up-inside'))
  fs.symlinkSync('../outside/canary.txt', path.join(root, 'link-out'))
  fs.symlinkSync(path.join(outside, 'canary.txt'), path.join(root, 'link-abs-out'))
  fs.symlinkSync('../outside', path.join(root, 'link-dir-out'))
  fs.symlinkSync('/proc/self/root' + outside + '/canary.txt', path.join(root, 'link-magic'))
  fs.symlinkSync('nowhere', path.join(root, 'dangling'))
  fs.symlinkSync('big.bin', path.join(root, 'flip')) // tests point it out and back
  files['link-in'] = files['big.bin']
  return { dir, root, root2, outside, canary, files }
}

/**
 * One request with the raw target `target` on a connection of its own, headers parsed here
 * (node:http refuses to send some targets). Resolves with { status, headers, body, valid }:
 * `valid` is whether the response was well-formed HTTP/1.1 with a body of its stated length.
 */
function rawRequest (port, target, { method = 'GET', headers = {} } = {}) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    const chunks = []
    socket.on('connect', () => {
      const all = { host: '127.0.0.1', ...headers }
      let head = `${method} ${target} HTTP/1.1\r\nConnection: close\r\n`
      for (const [k, v] of Object.entries(all)) head += `${k}: ${v}\r\n`
      socket.write(Buffer.from(head + '\r\n', 'latin1'))
    })
    socket.on('data', (d) => chunks.push(d))
    socket.on('error', () => {})
    socket.on('close', () => {
      const all = Buffer.concat(chunks)
      const at = all.indexOf('\r\n\r\n')
      if (at < 0) return resolve({ status: 0, headers: {}, body: all, raw: all, valid: false })
      const lines = all.subarray(0, at).toString('latin1').split('\r\n')
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(lines[0])
      const parsed = {}
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':')
        parsed[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      const body = all.subarray(at + 4)
      const length = parsed['content-length']
      const valid = m !== null && (method === 'HEAD' || length === undefined || Number(length) === body.length)
      resolve({ status: m ? Number(m[1]) : 0, headers: parsed, body, raw: all, valid })
    })
  })
}

/**
 * Checks a run of a whole test file in a child process ({ code, stdout, stderr }): no assertion
 * failed, it exited 0, at least 10 of its servers opened files `how` (their own check, "opens
 * beneath the root by <opener>", passed), and each of the top-level tests `names` passed.
 */
function checkRerun (t, run, { opener, how, names }) {
  const failed = run.stdout.split('\n').filter((l) => /^\s*not ok /.test(l))
  t.same(failed, [], 'no assertion failed')
  t.equal(run.code, 0, `the run passed${run.code === 0 ? '' : ': ' + run.stderr.slice(-2000)}`)
  const opened = (run.stdout.match(new RegExp(`^\\s*ok \\d+ - opens beneath the root by ${opener}$`, 'mg')) ?? []).length
  t.ok(opened >= 10, `${opened} servers of the run opened ${how}`)
  for (const name of names) {
    t.match(run.stdout, new RegExp(`^ok \\d+ - ${name.replace(/[()]/g, '\\$&')}`, 'm'), `passed ${how}: ${name}`)
  }
}

/** The top-level tests of static-containment.test.js that its runs elsewhere check by name (with their property tests). */
const CONTAINMENT_TESTS = ['CVE-2026-6414', 'CVE-2026-15074', 'CVE-2026-7120', 'CVE-2026-90982', 'CVE-2026-130811', 'CVE-2026-6410', 'CVE-2021-22963',
  'a symlink flipped out of the root', 'fds back to baseline']

module.exports = { buildTree, rawRequest, bytes, sha256, checkRerun, CONTAINMENT_TESTS }
