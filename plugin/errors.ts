import createError from '@fastify/error'

export const FST_ZERO_COPY_INVALID_OPTION = createError(
  'FST_ZERO_COPY_INVALID_OPTION',
  'fastify-zero-copy: invalid option "%s": %s',
  500,
  TypeError
)

export const FST_ZERO_COPY_MODE_UNAVAILABLE = createError(
  'FST_ZERO_COPY_MODE_UNAVAILABLE',
  'fastify-zero-copy: mode "%s" is not available on this machine: %s',
  500
)

export const FST_ZERO_COPY_INVALID_BODY = createError(
  'FST_ZERO_COPY_INVALID_BODY',
  'reply.sendZeroCopy() expects a Buffer, TypedArray or DataView, received %s',
  500,
  TypeError
)

export const FST_ZERO_COPY_SEND_FAILED = createError(
  'FST_ZERO_COPY_SEND_FAILED',
  'fastify-zero-copy: the native send failed after the headers went out (%s)',
  500
)
