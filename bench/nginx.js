'use strict'
// nginx as the benchmarks run it: one worker process (master_process off, as one Node
// process), on loopback, sendfile and tcp_nopush, no access log, its temporary paths in a
// prefix of its own. Each benchmark gives the lines that differ: more of the http block
// (mime types, open_file_cache) and the server block's own (what it serves).
const fs = require('node:fs')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { onCpu } = require('./placement')

const TEMP_DIRS = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']

/** The configuration file's text. `http`, `server`: lines of those blocks. */
function nginxConfig ({ prefix, port, writer, http, server }) {
  return `# written by ${writer}: one worker process (master_process off), as one Node process
daemon off;
master_process off;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 65;
${http.map((l) => `  ${l}\n`).join('')}  default_type application/octet-stream;
${TEMP_DIRS.map((d) => `  ${d}_temp_path ${prefix}/${d};\n`).join('')}  server {
    listen 127.0.0.1:${port};
${server.map((l) => `    ${l}\n`).join('')}  }
}
`
}

/**
 * Writes the configuration in a new prefix under `tmp` and starts nginx on `port`, on `cpu`
 * when pinned. The caller watches the process and waits for the port.
 */
function startNginx (nginxBin, { tmp, name, label, port, cpu, writer, http, server }) {
  const prefix = fs.mkdtempSync(path.join(tmp, `${name}-`))
  fs.chmodSync(prefix, 0o755)
  for (const d of TEMP_DIRS) fs.mkdirSync(path.join(prefix, d))
  const conf = nginxConfig({ prefix, port, writer, http, server })
  fs.writeFileSync(path.join(prefix, 'nginx.conf'), conf)
  const child = spawn(...onCpu(cpu, nginxBin, ['-p', prefix, '-e', path.join(prefix, 'error.log'), '-c', path.join(prefix, 'nginx.conf')]), { stdio: ['ignore', 'pipe', 'pipe'] })
  return { spec: { kind: 'nginx' }, label, child, pid: child.pid, port, stderr: '', stdout: '', exited: null, prefix, conf }
}

module.exports = { nginxConfig, startNginx }
