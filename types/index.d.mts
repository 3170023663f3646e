// The declarations of the ES module entry (plugin/esm.mjs): the one plugin of index.d.ts,
// exported as that module exports it (a default and named exports).
import plugin from './index.js'

export type {
  ZeroCopyBody,
  ZeroCopyFile,
  ZeroCopyFileHttpOptions,
  ZeroCopyFileOptions,
  ZeroCopyMode,
  FastifyZeroCopyOptions,
  ZeroCopyCapabilities,
  ZeroCopyStats,
  ZeroCopyDecorator
} from './index.js'

export default plugin
export declare const fastifyZeroCopy: typeof plugin.fastifyZeroCopy
