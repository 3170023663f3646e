#!/usr/bin/env node
'use strict'
// The long soak: `npm run soak` (5 minutes), or `node scripts/soak.js --seconds 900
// --connections 256`. The same load and checks as test/soak.test.js (test/fixtures/soak.js),
// for minutes instead of seconds; prints progress every 10 s, the server's RSS and fds over
// time, and the checks. Exits 1 if any check failed.
const path = require('node:path')
const { runSoak, judge } = require(path.join(__dirname, '..', 'test', 'fixtures', 'soak.js'))

function arg (name, fallback) {
  const at = process.argv.indexOf(`--${name}`)
  return at > 0 && process.argv[at + 1] !== undefined ? Number(process.argv[at + 1]) : fallback
}

async function main () {
  const seconds = arg('seconds', Number(process.env.ZC_SOAK_SECONDS || 300))
  const connections = arg('connections', 256)
  console.log(`soak: ${connections} keep-alive connections for ${seconds} s against a server process on 127.0.0.1`)
  const report = await runSoak({ seconds, connections, log: (line) => console.log(line), sampleMs: 1000 })
  console.log('\nserver RSS and fds over time:')
  const step = Math.max(1, Math.floor(report.samples.length / 20))
  for (let i = 0; i < report.samples.length; i += step) {
    const s = report.samples[i]
    console.log(`  ${s.t.toFixed(0).padStart(5)} s  RSS ${(s.rss / 1048576).toFixed(0).padStart(5)} MiB  fds ${String(s.fds).padStart(4)}  client connections ${s.open}`)
  }
  console.log(`\n${report.requests} requests in ${report.elapsed.toFixed(1)} s`)
  console.log(`server stats at the end: ${JSON.stringify(report.stats.end)}`)
  let failed = 0
  for (const { ok, name } of judge(report)) {
    console.log(`${ok ? 'ok    ' : 'FAILED'} ${name}`)
    if (!ok) failed++
  }
  console.log(`\n${judge(report).length - failed} passed, ${failed} failed`)
  process.exitCode = failed === 0 ? 0 : 1
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
