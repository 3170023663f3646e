// A node:test reporter for scripts/upstream-static.js (one test file a run): one JSON line
// per test, named by its parents' names and its own, so that one name states one test.
export default async function * reporter (source) {
  const stack = [] // the names of the tests open at each nesting level
  const counts = new Map() // a name seen twice (two tests of one title) gets #2, #3
  for await (const event of source) {
    const data = event.data
    if (event.type === 'test:start') {
      stack.length = data.nesting
      stack.push(data.name)
      continue
    }
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue
    if (data.file === undefined) continue // the run's own summary
    // The file itself, reported as a test (process isolation): its failure counts only when
    // none of its tests failed (it crashed, or it left something open).
    const whole = data.nesting === 0 && data.name.endsWith('.test.js')
    if (whole && event.type === 'test:pass') continue
    let id = whole ? '(the file)' : [...stack.slice(0, data.nesting), data.name].join(' > ')
    const n = (counts.get(id) ?? 0) + 1
    counts.set(id, n)
    if (n > 1) id += ` #${n}`
    const error = event.type === 'test:fail' ? firstLine(data.details?.error) : undefined
    yield JSON.stringify({ id, pass: event.type === 'test:pass', error }) + '\n'
  }
}

function firstLine (err) {
  if (err === undefined || err === null) return ''
  const cause = err.cause ?? err
  return String(cause.message ?? cause).split('\n').slice(0, 3).join(' | ').slice(0, 300)
}
