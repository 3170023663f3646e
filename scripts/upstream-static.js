'use strict'
// Runs @fastify/static's own test suite (shipped in its npm package, fixtures included)
// against fastify-zero-copy/static: the suite is copied into a temporary directory whose
// `index.js` is this package's /static entry, so every `require('..')` of the tests loads
// this plugin. Each test gets 10 s, so a test that hangs fails alone.
//
// The failing tests are compared with test/upstream-static-expected.json: a failure not
// listed there fails this script, and so does a listed test that now passes (the list says
// what is different today, nothing more). `notApplicable` tests replace @fastify/static's
// own modules (proxyquire) or test them directly: their outcome says nothing about this
// plugin and is not counted.
//
//   node scripts/upstream-static.js            compare with the list
//   node scripts/upstream-static.js --verbose  also print each failure's first error line
//   node scripts/upstream-static.js --self     run it against @fastify/static itself (a check
//                                              of this runner: everything should pass)
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const ROOT = path.join(__dirname, '..')
const EXPECTED = path.join(ROOT, 'test/upstream-static-expected.json')
const REPORTER = path.join(__dirname, 'upstream-static-reporter.mjs')
const TIMEOUT = path.join(__dirname, 'upstream-static-timeout.js')
const verbose = process.argv.includes('--verbose')

const upstream = path.dirname(require.resolve('@fastify/static/package.json', { paths: [ROOT] }))
const version = require(path.join(upstream, 'package.json')).version
const self = process.argv.includes('--self')
const ENTRY = path.join(ROOT, 'dist/plugin/static/index.js')
const expected = self ? {} : JSON.parse(fs.readFileSync(EXPECTED, 'utf8'))

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fzc-upstream-static-'))
try {
  fs.cpSync(path.join(upstream, 'test'), path.join(dir, 'test'), { recursive: true, verbatimSymlinks: true })
  // npm leaves symlinks out of a package: the one fixture the suite's repository holds
  // (static-symbolic-link/dir/symlink -> ../origin) is made again.
  const linkDir = path.join(dir, 'test/static-symbolic-link/dir')
  if (fs.existsSync(path.join(dir, 'test/static-symbolic-link/origin')) && !fs.existsSync(path.join(linkDir, 'symlink'))) {
    fs.mkdirSync(linkDir, { recursive: true })
    fs.symlinkSync('../origin', path.join(linkDir, 'symlink'))
  }
  if (self) {
    // The package as published: proxyquire's stubs reach its own modules.
    fs.cpSync(path.join(upstream, 'index.js'), path.join(dir, 'index.js'))
    fs.cpSync(path.join(upstream, 'lib'), path.join(dir, 'lib'), { recursive: true })
  } else {
    fs.writeFileSync(path.join(dir, 'index.js'), `'use strict'\nmodule.exports = require(${JSON.stringify(ENTRY)})\n`)
    fs.mkdirSync(path.join(dir, 'lib'))
    // The error classes the tests construct are this plugin's `errors` export; the listing
    // helpers they unit-test are @fastify/static's own (those tests are notApplicable).
    fs.writeFileSync(path.join(dir, 'lib/errors.js'), `'use strict'\nmodule.exports = require(${JSON.stringify(ENTRY)}).errors\n`)
    fs.writeFileSync(path.join(dir, 'lib/dirList.js'), `'use strict'\nmodule.exports = require(${JSON.stringify(path.join(upstream, 'lib/dirList.js'))})\n`)
  }

  const files = fs.readdirSync(path.join(dir, 'test')).filter((f) => f.endsWith('.test.js')).sort()
  // The tests' own dependencies (fastify, proxyquire, @fastify/compress, ...) are this
  // package's devDependencies.
  const nodePath = [path.join(ROOT, 'node_modules'), process.env.NODE_PATH].filter(Boolean).join(path.delimiter)
  const results = []
  // One file a run: a test's name is its file's and its parents' (the preload that sets the
  // timeouts makes node report itself as a top-level test's file).
  for (const file of files) {
    const out = path.join(dir, file + '.jsonl')
    const run = spawnSync(process.execPath, [
      '--test', '--require', TIMEOUT,
      `--test-reporter=${REPORTER}`, `--test-reporter-destination=${out}`,
      '--test-reporter=dot', '--test-reporter-destination=stderr',
      path.join('test', file)
    ], { cwd: dir, env: { ...process.env, NODE_PATH: nodePath }, stdio: ['ignore', 'inherit', 'inherit'] })
    if (run.error) throw run.error
    for (const line of fs.readFileSync(out, 'utf8').split('\n')) {
      if (line === '') continue
      const r = JSON.parse(line)
      results.push({ ...r, id: `${file}: ${r.id}` })
    }
  }
  const seen = new Map()
  for (const r of results) seen.set(r.id, r)
  const all = [...seen.values()]
  const na = expected.notApplicable ?? {}
  const listed = expected.failures ?? {}
  // A notApplicable test covers its subtests.
  const inapplicable = (id) => Object.keys(na).some((k) => id === k || id.startsWith(k + ' > '))
  const counted = all.filter((r) => !inapplicable(r.id))
  const failed = counted.filter((r) => !r.pass)
  const unexpected = failed.filter((r) => !(r.id in listed))
  const nowPassing = counted.filter((r) => r.pass && r.id in listed)
  const missing = Object.keys(listed).filter((id) => !seen.has(id))

  console.log(`\n@fastify/static ${version}'s suite against fastify-zero-copy/static:`)
  console.log(`  ${counted.length - failed.length} of ${counted.length} pass (and ${all.length - counted.length} not applicable, not counted)`)
  console.log(`  ${failed.length - unexpected.length} listed differences fail as expected`)
  for (const r of unexpected) console.log(`  UNEXPECTED FAILURE: ${r.id}${r.error ? `\n      ${r.error}` : ''}`)
  for (const r of nowPassing) console.log(`  LISTED BUT PASSES (remove it from the list): ${r.id}`)
  for (const id of missing) console.log(`  LISTED BUT NOT RUN (renamed upstream?): ${id}`)
  if (verbose) for (const r of failed) if (r.id in listed) console.log(`  expected: ${r.id}\n      ${r.error}`)
  process.exitCode = unexpected.length + nowPassing.length + missing.length === 0 ? 0 : 1
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
