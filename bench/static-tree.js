'use strict'
// The directory bench/static.js serves: a site and a download area, the same bytes for the
// same seed. 2,000 files from 1 KiB to 256 KiB (log-normal, median 20 KiB) in nested
// directories under site/, and a few 1 MiB and 64 MiB files under downloads/. Built once per
// seed in bench/results/tmp/static-tree-<seed>/ (git-ignored) and reused while its manifest
// says it is complete; every file's SHA-256 is in manifest.json, so the benchmark checks what
// the servers answer without trusting any of them.
//
//   node bench/static-tree.js [--seed N] [--dir DIR]   builds (or finds) the tree, prints its path
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')

const KiB = 1024
const MiB = 1024 * KiB
// Changing any of these changes the tree: they are part of the cache key.
const LAYOUT = {
  version: 1,
  smallCount: 2000,
  smallMin: 1 * KiB,
  smallMax: 256 * KiB,
  smallMedian: 20 * KiB,
  smallSigma: 1.0, // of ln(size): ~0.5% of the draws clamp at 256 KiB, ~0.1% at 1 KiB
  large: [{ size: 1 * MiB, count: 4 }, { size: 64 * MiB, count: 2 }]
}
const EXTENSIONS = ['html', 'css', 'js', 'json', 'svg', 'png', 'jpg', 'webp', 'woff2', 'txt']
const TOP = ['assets', 'blog', 'docs', 'img', 'static', 'media', 'fonts', 'api']

/** mulberry32: a small seeded generator; the same seed gives the same tree on any machine. */
function generator (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function normal (rand) {
  // Box-Muller; 1 - u keeps the logarithm finite.
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand())
}

/** The tree's plan: [{ rel, size, kind: 'small' | 'large' }], from the seed alone. */
function plan (seed) {
  const rand = generator(seed)
  const pick = xs => xs[Math.floor(rand() * xs.length)]
  // ~120 directories, 1 to 4 levels deep under site/.
  const dirs = []
  for (let i = 0; i < 120; i++) {
    const depth = 1 + Math.floor(rand() * 4)
    const parts = [pick(TOP)]
    for (let d = 1; d < depth; d++) parts.push(`${pick(['v', 'p', 'c', 'x'])}${Math.floor(rand() * 24)}`)
    dirs.push(path.posix.join('site', ...parts))
  }
  const files = []
  const seen = new Set()
  for (let i = 0; i < LAYOUT.smallCount; i++) {
    const raw = Math.round(LAYOUT.smallMedian * Math.exp(LAYOUT.smallSigma * normal(rand)))
    const size = Math.min(LAYOUT.smallMax, Math.max(LAYOUT.smallMin, raw))
    let rel
    do {
      rel = path.posix.join(pick(dirs), `f${i.toString(36)}-${Math.floor(rand() * 1e6).toString(36)}.${pick(EXTENSIONS)}`)
    } while (seen.has(rel))
    seen.add(rel)
    files.push({ rel, size, kind: 'small' })
  }
  for (const { size, count } of LAYOUT.large) {
    for (let i = 0; i < count; i++) files.push({ rel: `downloads/${size / MiB}m/file-${i}.bin`, size, kind: 'large' })
  }
  return files
}

/** A file's bytes: AES-128-CTR keystream under a key from the seed, the IV from its path. */
function writeFile (abs, seed, rel, size) {
  const key = crypto.createHash('sha256').update(`static-tree ${seed}`).digest().subarray(0, 16)
  const iv = crypto.createHash('sha256').update(rel).digest().subarray(0, 16)
  const cipher = crypto.createCipheriv('aes-128-ctr', key, iv)
  const hash = crypto.createHash('sha256')
  const zeros = Buffer.alloc(Math.min(size, 4 * MiB))
  const fd = fs.openSync(abs, 'w', 0o644)
  try {
    for (let off = 0; off < size;) {
      const n = Math.min(zeros.length, size - off)
      const chunk = cipher.update(zeros.subarray(0, n))
      fs.writeSync(fd, chunk)
      hash.update(chunk)
      off += n
    }
  } finally {
    fs.closeSync(fd)
  }
  return hash.digest('hex')
}

function cacheKey (seed) {
  return crypto.createHash('sha256').update(JSON.stringify({ seed, LAYOUT, EXTENSIONS, TOP })).digest('hex')
}

/**
 * The tree for `seed` under `dir` (default bench/results/tmp/static-tree-<seed>), built if it
 * is missing or was built from another layout: { root, manifest: { seed, key, files: [{ rel,
 * url, size, kind, sha256 }] } }. root is the directory every server serves.
 */
function ensureTree ({ seed = 1, dir } = {}) {
  const root = path.resolve(dir ?? path.join(__dirname, 'results', 'tmp', `static-tree-${seed}`))
  const manifestFile = path.join(root, '..', `${path.basename(root)}.manifest.json`)
  const key = cacheKey(seed)
  try {
    const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'))
    // Complete, and no file changed size since (a cheap check; the benchmark verifies bytes).
    if (manifest.key === key && manifest.files.every(f => fs.statSync(path.join(root, f.rel)).size === f.size)) return { root, manifestFile, manifest }
  } catch {}
  console.log(`# building the static tree for seed ${seed} in ${path.relative(process.cwd(), root)}`)
  fs.rmSync(root, { recursive: true, force: true })
  fs.rmSync(manifestFile, { force: true })
  const files = plan(seed).map(f => {
    const abs = path.join(root, f.rel)
    fs.mkdirSync(path.dirname(abs), { recursive: true, mode: 0o755 })
    return { ...f, url: '/' + f.rel, sha256: writeFile(abs, seed, f.rel, f.size) }
  })
  // Every directory world-readable: nginx's worker may run as another user.
  for (let d = root; d !== path.dirname(d) && d.startsWith(path.join(__dirname, 'results')); d = path.dirname(d)) fs.chmodSync(d, 0o755)
  const manifest = { seed, key, layout: LAYOUT, files }
  fs.writeFileSync(manifestFile, JSON.stringify(manifest) + '\n') // last: the tree is complete
  return { root, manifestFile, manifest }
}

/** Sizes of the small files: count, total, min, median, mean, max (for the report). */
function describe (manifest) {
  const small = manifest.files.filter(f => f.kind === 'small').map(f => f.size).sort((a, b) => a - b)
  const total = small.reduce((a, b) => a + b, 0)
  return {
    smallFiles: small.length,
    smallBytes: total,
    smallMin: small[0],
    smallMedian: small[small.length >> 1],
    smallMean: Math.round(total / small.length),
    smallP90: small[Math.floor(small.length * 0.9)],
    smallMax: small[small.length - 1],
    large: LAYOUT.large
  }
}

module.exports = { ensureTree, describe, plan, generator, LAYOUT }

if (require.main === module) {
  const argv = process.argv.slice(2)
  const get = name => { const i = argv.indexOf(name); return i < 0 ? undefined : argv[i + 1] }
  const seed = get('--seed') === undefined ? 1 : Number(get('--seed'))
  const { root, manifest } = ensureTree({ seed, dir: get('--dir') })
  console.log(root)
  console.log(JSON.stringify(describe(manifest)))
}
