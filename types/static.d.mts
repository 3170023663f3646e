// The declarations of fastify-zero-copy/static's ES module entry (plugin/static/esm.mjs): the
// one plugin of static.d.ts (its reply decorators and app.zeroCopy with it), exported as that
// module exports it (a default and named exports).
import plugin from './static.js'

export type {
  SendOptions,
  SendFileOptions,
  ExtendedInformation,
  ListFile,
  ListDir,
  ListRender,
  ListOptions,
  ListOptionsJsonFormat,
  ListOptionsHtmlFormat,
  OpenFileCacheOptions,
  FastifyZeroCopyStaticOptions,
  FastifyStaticOptions,
  StaticErrors
} from './static.js'

export default plugin
export declare const fastifyStatic: typeof plugin.fastifyStatic
export declare const fastifyZeroCopyStatic: typeof plugin.fastifyZeroCopyStatic
export declare const errors: typeof plugin.errors
