'use strict'
// Where run.js puts its processes: the server under test (all its threads, io_uring workers
// included) on one CPU, wrk on another (taskset, as ../shared/BENCH.md asks: unpinned, the
// two fight for the same two cores and a ratio measures the scheduler), and, for the
// container cases, the server inside a runc container (bench/container.js).
const fs = require('node:fs')
const os = require('node:os')
const { spawnSync } = require('node:child_process')

const SERVER_CPU = 0
const CLIENT_CPU = 1

/** The CPUs to pin to, or null when pinning is off; throws when it cannot be done. */
function pinning (enabled) {
  if (!enabled) return null
  if (spawnSync('sh', ['-c', 'command -v taskset']).status !== 0) throw new Error('taskset is missing (util-linux); or run with --no-pin')
  if (os.cpus().length < 2) throw new Error('pinning needs two CPUs; run with --no-pin')
  return { server: SERVER_CPU, client: CLIENT_CPU }
}

/** `cmd args` run on `cpu` (taskset execs the command: the pid stays the command's). */
function onCpu (cpu, cmd, args) {
  return cpu === null || cpu === undefined ? [cmd, args] : ['taskset', ['-c', String(cpu), cmd, ...args]]
}

/**
 * The CPUs each thread of `pid` may run on, grouped: { '0': ['node', 'iou-wrk-123', ...] }.
 * Recorded after the warm-up, when io_uring's workers exist, to show the pin held for them.
 */
function threadAffinity (pid) {
  const out = {}
  let tasks = []
  try { tasks = fs.readdirSync(`/proc/${pid}/task`) } catch { return null }
  for (const tid of tasks) {
    try {
      const status = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')
      const cpus = (/^Cpus_allowed_list:\s*(\S+)/m.exec(status) ?? [])[1] ?? '?'
      const name = (/^Name:\s*(.*)$/m.exec(status) ?? [])[1] ?? '?'
      ;(out[cpus] ??= []).push(name.replace(/\d+$/, 'N'))
    } catch {} // the thread ended meanwhile
  }
  for (const k of Object.keys(out)) out[k] = [...new Set(out[k])].sort()
  return out
}

/**
 * bench/server.js in a runc container (host network, see bench/container.js), pinned to `cpu`,
 * shaped like run.js's own servers: { spec, label, pid (the server's, on the host), port,
 * stderr, exited, stop() }.
 */
async function startContained ({ spec, label, size, file, cpu, pluginRoot }) {
  const { startBenchServer } = require('./container')
  const server = await startBenchServer({ profile: spec.container, kind: spec.kind, size, file, cpu: cpu ?? undefined, env: { BENCH_PLUGIN: pluginRoot } })
  const srv = {
    spec,
    label,
    pid: server.pid,
    port: server.port,
    get stderr () { return server.stderr().split('\n').slice(-60).join('\n') },
    stdout: '',
    exited: null,
    stop: async () => {
      await server.stop()
      return { code: 0, signal: null }
    }
  }
  server.child.once('exit', (code, signal) => { srv.exited = { code, signal } })
  return srv
}

module.exports = { pinning, onCpu, threadAffinity, startContained }
