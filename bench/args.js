'use strict'
// Command-line options shared by run.js and file-latency.js.

/**
 * Calls `on(name, value)` for each argument in turn; `value()` takes the next argument as the
 * option's value (an error if there is none).
 */
function eachOption (argv, on) {
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i]
    on(name, () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${name} needs a value`)
      return v
    })
  }
}

module.exports = { eachOption }
