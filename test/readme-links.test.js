'use strict'
// The README and the docs a user gets with the package: every relative link names a file that
// is in the packed tarball (the package has no repository URL, so a link to a file left out,
// such as bench/, leads nowhere), and every anchor names a heading of its file.
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { test } = require('tap')

const root = path.join(__dirname, '..')

/** The files `npm pack` would put in the tarball (no lifecycle scripts: nothing is built). */
function packedFiles () {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' })
  return new Set(JSON.parse(out)[0].files.map((f) => f.path))
}

/** Markdown outside fenced code blocks, line by line (a link in a code sample is not a link). */
function proseLines (text) {
  const lines = []
  let fence = null
  for (const [i, line] of text.split('\n').entries()) {
    const open = /^\s*(```+|~~~+)/.exec(line)
    if (open) {
      if (fence === null) fence = open[1][0]
      else if (open[1][0] === fence) fence = null
      continue
    }
    if (fence === null) lines.push({ n: i + 1, line: line.replace(/`[^`]*`/g, (span) => span.includes('](') ? '' : span) })
  }
  return lines
}

/** Anchors of a file's headings, as GitHub and npm make them (duplicates get -1, -2, ...). */
function anchorsOf (text) {
  const seen = new Map()
  const anchors = new Set()
  for (const { line } of proseLines(text)) {
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)
    if (!h) continue
    const plain = h[1].replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    const slug = plain.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-')
    const count = seen.get(slug) ?? 0
    seen.set(slug, count + 1)
    anchors.add(count === 0 ? slug : `${slug}-${count}`)
  }
  return anchors
}

/** Every link target of a file: inline `[text](target)`, `<a href>`, and `[ref]: target`. */
function linksOf (text) {
  const links = []
  for (const { n, line } of proseLines(text)) {
    for (const m of line.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) links.push({ n, target: m[1] })
    for (const m of line.matchAll(/<a\s[^>]*href="([^"]+)"/g)) links.push({ n, target: m[1] })
    const ref = /^\s*\[[^\]]+\]:\s*<?(\S+?)>?(\s|$)/.exec(line)
    if (ref) links.push({ n, target: ref[1] })
  }
  return links
}

/** What is wrong with the links of `file` (a path in the package), given the packed files. */
function brokenLinks (file, packed, read) {
  const problems = []
  for (const { n, target } of linksOf(read(file))) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) {
      if (!/^(https:|mailto:)/i.test(target)) problems.push(`${file}:${n}: ${target}: only https and mailto links lead anywhere from an installed package`)
      continue
    }
    const hash = target.indexOf('#')
    const rel = decodeURIComponent(hash < 0 ? target : target.slice(0, hash))
    const anchor = hash < 0 ? null : decodeURIComponent(target.slice(hash + 1))
    const dest = rel === '' ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), rel)).replace(/\/$/, '')
    if (dest.startsWith('../') || path.posix.isAbsolute(dest)) {
      problems.push(`${file}:${n}: ${target}: outside the package`)
      continue
    }
    if (!packed.has(dest)) {
      const dir = [...packed].some((p) => p.startsWith(dest + '/'))
      problems.push(`${file}:${n}: ${target}: ${dir ? 'a directory (link a file in it)' : 'not in the packed tarball'}`)
      continue
    }
    if (anchor !== null && !anchorsOf(read(dest)).has(anchor)) problems.push(`${file}:${n}: ${target}: no heading #${anchor} in ${dest}`)
  }
  return problems
}

const readFromDisk = (file) => fs.readFileSync(path.join(root, file), 'utf8')

test('the checker finds what it is meant to find', async (t) => {
  const docs = {
    'README.md': [
      '# Title', '## Serving a directory: `fastify-zero-copy/static`', '## Metrics: `diagnostics_channel`', '## Same', '## Same',
      '[ok](#serving-a-directory-fastify-zero-copystatic) [ok](#metrics-diagnostics_channel) [ok](#same-1)',
      '[ok](docs/A.md#part) [ok](https://nodejs.org/api/fs.html) [ok](CHANGELOG.md)',
      '[bad](#nowhere) [bad](bench/README.md) [bad](docs/A.md#missing) [bad](../other/README.md) [bad](docs) [bad](http://example.com/)',
      '```', '[in a code block](#not-checked)', '```'
    ].join('\n'),
    'docs/A.md': '# A\n## Part\n[ok](../README.md#title) [bad](./B.md)\n',
    'CHANGELOG.md': '# Changes\n'
  }
  const packed = new Set(Object.keys(docs))
  const read = (file) => docs[file]
  const problems = [...brokenLinks('README.md', packed, read), ...brokenLinks('docs/A.md', packed, read)]
  t.same(problems.map((p) => p.split(': ')[0] + ': ' + p.split(': ')[1]), [
    'README.md:8: #nowhere',
    'README.md:8: bench/README.md',
    'README.md:8: docs/A.md#missing',
    'README.md:8: ../other/README.md',
    'README.md:8: docs',
    'README.md:8: http://example.com/',
    'docs/A.md:3: ./B.md'
  ], problems.join('\n'))
})

test('README.md and the packed docs/*.md: every relative link is a packed file, every anchor a heading', async (t) => {
  const packed = packedFiles()
  t.ok(packed.has('README.md'), 'README.md is packed')
  const docs = [...packed].filter((p) => /^docs\/.*\.md$/.test(p))
  t.ok(docs.length > 0, `docs packed: ${docs.join(', ')}`)
  let links = 0
  for (const file of ['README.md', ...docs]) {
    links += linksOf(readFromDisk(file)).length
    const problems = brokenLinks(file, packed, readFromDisk)
    t.same(problems, [], `${file}: ${problems.length} broken link(s)\n${problems.join('\n')}`)
  }
  t.ok(links > 10, `${links} links checked`)
})
