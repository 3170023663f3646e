'use strict'
// A benchmark server (bench/server.js) inside a real runc container, for the file cases "in a
// container": the same server, under Podman's default seccomp profile or the Docker-like one
// (see test/container.js for the bundle and the profiles), listening on the host's loopback.
//
//   node bench/container.js PROFILE KIND SIZE [--file FILE] [--cpu N] [server.js options]
//
// PROFILE: podman | docker-like. KIND, SIZE and the options are bench/server.js's. The file's
// directory (and BENCH_PLUGIN's root, when set) is bind-mounted at the same path. --cpu N pins
// the server to that CPU (taskset). Prints "READY <port> <pid>" (pid: the host's) and runs
// until SIGINT or SIGTERM; the container is removed then, or when this process ends.
//
// From code: startBenchServer({ profile, kind, size, file, cpu, args, env }) resolves with
// { port, pid, id, child (`runc run`), stderr(), stop() }.
const path = require('node:path')
const { startContainer, PROFILES } = require('../test/container')

async function startBenchServer ({ profile, kind, size, file, cpu, args = [], env = {} }) {
  const binds = []
  const serverArgs = [kind, String(size), ...args]
  if (file !== undefined) {
    const abs = path.resolve(file)
    binds.push({ source: path.dirname(abs) })
    serverArgs.push('--file', abs)
  }
  const plugin = env.BENCH_PLUGIN ?? process.env.BENCH_PLUGIN
  if (plugin !== undefined) binds.push({ source: path.resolve(plugin) })
  const server = await startContainer({
    profile,
    script: path.join('bench', 'server.js'),
    args: serverArgs,
    wrap: cpu === undefined ? [] : ['taskset', '-c', String(cpu)],
    env: { ...(plugin !== undefined && { BENCH_PLUGIN: path.resolve(plugin) }), ...env },
    binds,
    parseReady: (stdout) => {
      const m = /^READY (\d+)$/m.exec(stdout)
      return m === null ? null : { port: Number(m[1]) }
    }
  })
  return { port: server.port, pid: server.pid, id: server.id, child: server.child, stderr: server.stderr, stop: server.stop }
}

async function main (argv) {
  const [profile, kind, size, ...rest] = argv
  if (!PROFILES.includes(profile) || kind === undefined || size === undefined) {
    process.stderr.write(`usage: node bench/container.js ${PROFILES.join('|')} KIND SIZE [--file FILE] [--cpu N] [server.js options]\n`)
    process.exit(2)
  }
  let file
  let cpu
  const args = []
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--file') file = rest[++i]
    else if (rest[i] === '--cpu') cpu = Number(rest[++i])
    else args.push(rest[i])
  }
  const server = await startBenchServer({ profile, kind, size, file, cpu, args })
  process.stdout.write(`READY ${server.port} ${server.pid}\n`)
  const end = () => server.stop().then(() => process.exit(0))
  process.removeAllListeners('SIGINT')
  process.removeAllListeners('SIGTERM')
  process.once('SIGINT', end)
  process.once('SIGTERM', end)
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`bench/container.js: ${err.message}\n`)
    process.exit(1)
  })
}

module.exports = { startBenchServer }
