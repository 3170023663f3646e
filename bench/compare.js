'use strict'
// The comparisons the report leads with: each engine of the plugin against the other, against
// @fastify/static, nginx and reply.send, case by case. A ratio is of the medians (GB/s, CPU
// s/GB); its noise is the range of the per-round ratios, round i of A over round i of B (the
// two ran one right after the other), so a ratio whose range straddles 1 is a tie. The machine
// is shared: "quiet" repeats the ratio over the pairs where neither round saw more than
// QUIET of the machine busy with other processes (run.js's otherCpuShare).
const QUIET = 0.10

// [A, B, what it says]; a pair is shown where both servers ran in the case.
const PAIRS = [
  ['zc-file-classic', 'zc-file', 'classic / io_uring'],
  ['zc-file-classic', 'fastify-static', 'classic / @fastify/static'],
  ['zc-file', 'fastify-static', 'io_uring / @fastify/static'],
  ['zc-file-classic', 'nginx', 'classic / nginx'],
  ['zc-file', 'nginx', 'io_uring / nginx'],
  ['zc-file [podman]', 'fastify-static [podman]', 'container: plugin / @fastify/static'],
  ['zc-file [docker-like]', 'fastify-static [docker-like]', 'container: plugin / @fastify/static'],
  ['zc-file [podman]', 'zc-file', 'container plugin / host io_uring'],
  ['zc-file [docker-like]', 'zc-file', 'container plugin / host io_uring'],
  ['zc-file [podman]', 'nginx', 'container plugin / host nginx'],
  ['zc-file [docker-like]', 'nginx', 'container plugin / host nginx'],
  ['zc-auto-classic', 'fastify-send', 'classic / reply.send'],
  ['zc-auto', 'fastify-send', 'io_uring / reply.send'],
  ['zc-stream', 'fastify-send', 'plugin, mode stream / reply.send'],
  ['zc-auto', 'zc-stream', 'io_uring / plugin, mode stream'],
  ['zc-auto@base', 'fastify-send', 'base revision / reply.send'],
  ['zc-auto-classic@base', 'fastify-send', 'classic, base revision / reply.send'],
  ['zc-auto', 'zc-auto@base', 'io_uring: this revision / base'],
  ['zc-auto-classic', 'zc-auto-classic@base', 'classic: this revision / base']
]

function pairRatios (a, b, key, quietOnly = false) {
  const out = []
  for (let i = 0; i < Math.min(a.rounds.length, b.rounds.length); i++) {
    if (quietOnly && !(a.rounds[i].otherCpuShare <= QUIET && b.rounds[i].otherCpuShare <= QUIET)) continue
    const x = a.rounds[i][key]
    const y = b.rounds[i][key]
    if (Number.isFinite(x) && Number.isFinite(y) && y > 0) out.push(x / y)
  }
  return out
}

function median (xs) {
  const v = [...xs].sort((p, q) => p - q)
  if (v.length === 0) return null
  const mid = v.length >> 1
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

// run.js compares GB/s and CPU s/GB; bench/static.js passes its own pairs and req/s, CPU per
// request (the same ratios for one file size, and the ones that mean something for a mix).
const FILE_KEYS = { rate: 'gbps', cpu: 'serverCpuPerGB', rateName: 'GB/s', cpuName: 'CPU s/GB' }

/**
 * [{ case, what, a, b, gbps, gbpsMin, gbpsMax, cpu, cpuMin, cpuMax, pairs }] for a report;
 * `gbps` is the ratio of `keys.rate` (GB/s unless told).
 */
function comparisons (report, pairs = PAIRS, keys = FILE_KEYS) {
  const rows = []
  for (const c of report.cases) {
    if (c.aborted !== undefined) continue
    const byLabel = new Map(c.servers.filter(s => s.summary !== undefined).map(s => [s.label, s]))
    for (const [la, lb, what] of pairs) {
      const a = byLabel.get(la)
      const b = byLabel.get(lb)
      if (a === undefined || b === undefined) continue
      const g = pairRatios(a, b, keys.rate)
      const cpu = pairRatios(a, b, keys.cpu)
      const quiet = pairRatios(a, b, keys.rate, true)
      const quietCpu = pairRatios(a, b, keys.cpu, true)
      const ra = a.summary[keys.rate]
      const rb = b.summary[keys.rate]
      const ca = a.summary[keys.cpu] / b.summary[keys.cpu]
      rows.push({
        case: `${c.sizeLabel} c${c.conns}`,
        what,
        a: la,
        b: lb,
        gbps: rb > 0 ? ra / rb : null,
        gbpsMin: g.length > 0 ? Math.min(...g) : null,
        gbpsMax: g.length > 0 ? Math.max(...g) : null,
        cpu: Number.isFinite(ca) ? ca : null,
        cpuMin: cpu.length > 0 ? Math.min(...cpu) : null,
        cpuMax: cpu.length > 0 ? Math.max(...cpu) : null,
        pairs: g.length,
        quietPairs: quiet.length,
        quietGbps: median(quiet),
        quietCpu: median(quietCpu)
      })
    }
  }
  return rows
}

const f = x => x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(2)

/** The comparisons as a markdown section (empty when the run had none of these pairs). */
function comparisonMarkdown (report, pairs = PAIRS, keys = FILE_KEYS) {
  const rows = comparisons(report, pairs, keys)
  if (rows.length === 0) return []
  const lines = ['', '## Ratios', '',
    'Ratio of the medians; in brackets the lowest and highest of the per-round ratios (round i of A / round i of B, run back to back): the noise. ' +
    `"quiet": the median of the per-round ratios over the pairs where neither round had more than ${100 * QUIET}% of the machine busy with other processes, and how many pairs that was. ${keys.rateName} above 1 is faster, ${keys.cpuName} below 1 is cheaper.`, '',
    `| case | ratio | A | B | ${keys.rateName} x | [per-round] | ${keys.cpuName} x | [per-round] | quiet ${keys.rateName} x | quiet CPU x | quiet pairs |`,
    '|---|---|---|---|---|---|---|---|---|---|---|']
  for (const r of rows) {
    lines.push(`| ${r.case} | ${r.what} | ${r.a} | ${r.b} | ${f(r.gbps)} | [${f(r.gbpsMin)}-${f(r.gbpsMax)}] | ${f(r.cpu)} | [${f(r.cpuMin)}-${f(r.cpuMax)}] | ${f(r.quietGbps)} | ${f(r.quietCpu)} | ${r.quietPairs}/${r.pairs} |`)
  }
  return lines
}

module.exports = { comparisons, comparisonMarkdown, PAIRS, FILE_KEYS }
