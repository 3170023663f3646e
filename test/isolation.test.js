'use strict'
// Isolation at scale: 1,000 rounds, in four lanes at once, of a client vanishing mid-body
// (RST or FIN) while new clients connect at that very moment, so the kernel hands the new
// connections the descriptor numbers just freed while the vanished body's sends may still be
// in flight. Every body is distinct in every 16-byte block (bodies.tagged: request id and
// block index), so a byte that reached the wrong client is caught, and named.
//
// A second test has the server cut bodies (reply.raw.destroy() from a timer, as a timeout or
// the application would): Node closes the socket's fd at once, and the plugin learns of it
// only when the response's 'close' event runs, later in the loop; in between, a new
// connection can be accepted on the same fd number while the ring reaps and submits slices. A build of the addon
// that sent on Node's fd number instead of its own dup() failed this test within a few
// hundred rounds (foreign bytes before a client's status line); the plugin must pass it.
const crypto = require('node:crypto')
const { test } = require('tap')
const { KiB, MiB, sha256, startServer, fetchChecked, openFds, steadyFds, eventually, inFlightIsZero, tagged, ownerAt } = require('./helpers')

const ROUNDS = Number(process.env.ZC_ISOLATION_ROUNDS || 1000)
const CUTS = Number(process.env.ZC_ISOLATION_CUTS || 400)
const LANES = 4

const describe = (res, id) => {
  const owner = res.badBytes ? ownerAt(res.badBytes, 0) : null
  return `client ${id}: first wrong byte at ${res.firstBad} of ${res.length}` +
    (owner ? `; the block there says body ${owner.id}, block ${owner.block}` : '')
}

test(`${ROUNDS} rounds of a client vanishing mid-body while new clients connect: no byte reaches the wrong client`, async (t) => {
  const noise = crypto.randomBytes(2 * MiB)
  const bodies = new Map()
  const serverFd = new Map() // request id -> the server's fd number for its connection
  const sendsAtArrival = new Map() // request id -> sends in flight on the ring when it arrived
  const { app, port } = await startServer(t, {
    setup (app) {
      app.addHook('onRequest', async (req) => {
        serverFd.set(req.params.id, req.raw.socket._handle?.fd)
        sendsAtArrival.set(req.params.id, app.zeroCopy.stats().inFlight.sends)
      })
      app.get('/:id', (req, reply) => {
        const body = bodies.get(req.params.id)
        if (body === undefined) return reply.code(404).send()
        return reply.sendZeroCopy(body)
      })
    }
  })
  // Warm up: the ring and its eventfd are opened before the baseline.
  bodies.set('0', tagged(0, MiB, noise))
  t.equal((await fetchChecked(port, '/0', bodies.get('0'))).exact, true)
  t.ok(await eventually(() => inFlightIsZero(app)))
  const baseline = await steadyFds()
  const before = app.zeroCopy.stats()

  let nextId = 1
  const newBody = (min, max) => {
    const id = nextId++
    bodies.set(String(id), tagged(id, crypto.randomInt(min, max), noise))
    return String(id)
  }
  const failures = []
  const figures = { rounds: 0, vanished: 0, resets: 0, exact: 0, prefixBytes: 0, fdReused: 0, fdReusedInFlight: 0 }

  async function lane (laneNo) {
    for (let r = laneNo; r < ROUNDS; r += LANES) {
      const v = newBody(512 * KiB, 2 * MiB)
      const a = newBody(16 * KiB, MiB)
      const b = newBody(16 * KiB, MiB)
      const reset = r % 2 === 0
      let fresh = null
      const vanishing = fetchChecked(port, `/${v}`, bodies.get(v), {
        vanishAt: crypto.randomInt(1, bodies.get(v).length - 1),
        reset,
        // The new clients connect in the same tick as the old one goes away.
        onVanish: () => { fresh = [a, b].map((id) => fetchChecked(port, `/${id}`, bodies.get(id))) }
      })
      const part = await vanishing
      figures.vanished++
      if (reset) figures.resets++
      figures.prefixBytes += part.length
      if (part.firstBad >= 0 || part.status !== 200) failures.push(`round ${r}, vanishing ${describe(part, v)}`)
      if (fresh === null) failures.push(`round ${r}: the vanishing client got the whole body`)
      for (const [k, res] of (await Promise.all(fresh || [])).entries()) {
        const id = [a, b][k]
        if (res.exact && res.status === 200 && res.sha === sha256(bodies.get(id))) figures.exact++
        else failures.push(`round ${r}, new ${describe(res, id)}`)
        if (serverFd.get(id) === serverFd.get(v)) {
          figures.fdReused++
          if (sendsAtArrival.get(id) > 0) figures.fdReusedInFlight++
        }
      }
      for (const id of [v, a, b]) { bodies.delete(id); serverFd.delete(id); sendsAtArrival.delete(id) }
      figures.rounds++
    }
  }
  await Promise.all(Array.from({ length: LANES }, (_, i) => lane(i)))

  t.same(failures.slice(0, 20), [], `no client saw a foreign or wrong byte (${failures.length} failures)`)
  t.equal(figures.rounds, ROUNDS, `${figures.rounds} rounds`)
  t.equal(figures.exact, 2 * ROUNDS, `${figures.exact} new clients received exactly their own body`)
  t.equal(figures.vanished, ROUNDS, `${figures.vanished} clients vanished mid-body (${figures.resets} with RST), each holding a true prefix (${(figures.prefixBytes / MiB).toFixed(0)} MiB in all)`)
  t.ok(figures.fdReused > 0, `a new connection got the vanished connection's fd number in ${figures.fdReused} rounds`)
  t.comment(`... of which ${figures.fdReusedInFlight} arrived while sends were in flight on the ring`)
  t.ok(await eventually(() => inFlightIsZero(app), 10000), 'nothing in flight, nothing pinned')
  t.ok(await eventually(() => openFds() <= baseline, 10000), `open fds back to ${baseline} (now ${openFds()})`)
  const stats = app.zeroCopy.stats()
  const native = stats.responses.sendZc + stats.responses.send - before.responses.sendZc - before.responses.send
  t.equal(native, 3 * ROUNDS, `all ${3 * ROUNDS} bodies went through the ring (${JSON.stringify(stats.fallbacks)})`)
})

test(`${CUTS} rounds of the server cutting a body mid-transfer while new clients connect: no byte reaches the wrong client`, async (t) => {
  const noise = crypto.randomBytes(4 * MiB)
  const bodies = new Map()
  const { app, port } = await startServer(t, {
    setup (app) {
      app.get('/:id', (req, reply) => {
        // As a timeout or the application would: the connection goes while the ring sends.
        if (req.query.cut !== undefined) setTimeout(() => reply.raw.destroy(), Number(req.query.cut))
        return reply.sendZeroCopy(bodies.get(req.params.id))
      })
    }
  })
  let nextId = 1
  const newBody = (min, max) => {
    const id = nextId++
    bodies.set(String(id), tagged(id, crypto.randomInt(min, max), noise))
    return String(id)
  }
  const failures = []
  const figures = { rounds: 0, cut: 0, completedBeforeCut: 0, cutBeforeHead: 0, exact: 0 }
  async function lane (laneNo) {
    for (let r = laneNo; r < CUTS; r += 2 * LANES) {
      const v = newBody(4 * MiB, 12 * MiB)
      const a = newBody(16 * KiB, 2 * MiB)
      let fresh = null
      const cutting = fetchChecked(port, `/${v}?cut=${crypto.randomInt(0, 3)}`, bodies.get(v), {
        cutOk: true,
        // A new client connects as the doomed body starts.
        onHeaders: () => { fresh = fetchChecked(port, `/${a}`, bodies.get(a)) }
      })
      const part = await cutting.catch((err) => ({ error: `${err.code}: ${err.message}` }))
      if (part.error && !part.cut) failures.push(`round ${r}, the cut client ${v}: ${part.error}`)
      else if (part.firstBad >= 0) failures.push(`round ${r}, cut ${describe(part, v)}`)
      else if (part.cut) figures.cut++
      else figures.completedBeforeCut++
      if (fresh === null) { // cut before its head went out
        figures.cutBeforeHead++
        fresh = fetchChecked(port, `/${a}`, bodies.get(a))
      }
      const res = await fresh.catch((err) => ({ error: `${err.code}: ${err.message}` }))
      if (res.exact && res.status === 200 && res.sha === sha256(bodies.get(a))) figures.exact++
      else failures.push(`round ${r}, new ${res.error ?? describe(res, a)}`)
      bodies.delete(v)
      bodies.delete(a)
      figures.rounds++
    }
  }
  await Promise.all(Array.from({ length: 2 * LANES }, (_, i) => lane(i)))
  t.same(failures.slice(0, 20), [], `no client saw a foreign or wrong byte (${failures.length} failures)`)
  t.equal(figures.rounds, CUTS, `${figures.rounds} rounds`)
  t.equal(figures.exact, CUTS, `${figures.exact} new clients received exactly their own body`)
  t.ok(figures.cut > CUTS / 4, `${figures.cut} bodies cut by the server mid-transfer, each a true prefix (${figures.completedBeforeCut} completed first, ${figures.cutBeforeHead} cut before the head)`)
  t.ok(await eventually(() => inFlightIsZero(app), 10000), 'nothing in flight, nothing pinned')
})
