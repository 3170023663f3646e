// The ES module entry: the CommonJS build is the one implementation.
import plugin from '../dist/plugin/index.js'

export default plugin
export const fastifyZeroCopy = plugin
