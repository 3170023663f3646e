'use strict'
// The soak, bounded for CI (test/fixtures/soak.js; `npm run soak` runs it for minutes):
// 256 concurrent keep-alive connections, bodies from 700 bytes to 4 MiB, one in ten large
// requests vanishing mid-body. Every completed body verified; at the end the server's fds,
// in-flight sends and pinned bytes are back at their baseline and its RSS stopped growing.
const { test } = require('tap')
const { runSoak, judge } = require('./fixtures/soak')

const SECONDS = Number(process.env.ZC_SOAK_SECONDS || 20)

test(`soak: 256 keep-alive connections for ${SECONDS} s`, async (t) => {
  const report = await runSoak({ seconds: SECONDS, connections: 256, t, log: (line) => t.comment(line) })
  for (const { ok, name } of judge(report)) t.ok(ok, name)
  t.comment(`${report.requests} requests in ${report.elapsed.toFixed(1)} s; server stats ${JSON.stringify(report.stats.end)}`)
})
