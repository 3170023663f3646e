// The ES module entry of fastify-zero-copy/static: the CommonJS build is the one implementation.
import plugin from '../../dist/plugin/static/index.js'

export default plugin
export const fastifyStatic = plugin
export const fastifyZeroCopyStatic = plugin
export const errors = plugin.errors
