'use strict'
// npm install hook: load a prebuilt or earlier build of the addon, else compile it. A failure
// never fails the user's install: the plugin then runs on Fastify's ordinary path and
// app.zeroCopy.capabilities.reason says what is missing.
const { spawnSync } = require('node:child_process')
const path = require('node:path')

// The packages to add, by distribution (dist/ is in the tarball; a fresh checkout installs
// before it compiles the TypeScript).
function installHint () {
  try {
    return require('../dist/plugin/install-hint.js').installHint()
  } catch {
    return 'install liburing\'s development files, a C++ compiler, make and Python 3'
  }
}

const root = path.join(__dirname, '..')

function loads () {
  try {
    require('node-gyp-build')(root)
    return true
  } catch {
    return false
  }
}

if (process.platform !== 'linux') {
  console.warn(`fastify-zero-copy: io_uring needs Linux; on ${process.platform} the plugin uses Fastify's ordinary path.`)
  process.exit(0)
}
if (loads()) process.exit(0)

const nodeGyp = process.env.npm_config_node_gyp
const [cmd, args] = nodeGyp ? [process.execPath, [nodeGyp, 'rebuild']] : ['node-gyp', ['rebuild']]
const result = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' })
if (result.status !== 0 || !loads()) {
  console.warn([
    'fastify-zero-copy: no prebuilt addon fits this system and the native addon could not be built,',
    'so replies take Fastify\'s ordinary path. For the io_uring path:',
    `  ${installHint()}`,
    'then run: npm rebuild fastify-zero-copy'
  ].join('\n'))
}
process.exit(0)
