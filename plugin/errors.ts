import createError from '@fastify/error'

export const FST_ZERO_COPY_INVALID_OPTION = createError(
  'FST_ZERO_COPY_INVALID_OPTION',
  'fastify-zero-copy: invalid option "%s": %s',
  500,
  TypeError
)

export const FST_ZERO_COPY_MODE_UNAVAILABLE = createError(
  'FST_ZERO_COPY_MODE_UNAVAILABLE',
  'fastify-zero-copy: %s is not available on this machine: %s',
  500
)

export const FST_ZERO_COPY_INVALID_BODY = createError(
  'FST_ZERO_COPY_INVALID_BODY',
  'reply.sendZeroCopy() expects a Buffer, TypedArray, DataView, { path }, { fd } or FileHandle, received %s',
  500,
  TypeError
)

export const FST_ZERO_COPY_SEND_FAILED = createError(
  'FST_ZERO_COPY_SEND_FAILED',
  'fastify-zero-copy: the native send failed after the headers went out (%s)',
  500
)

export const FST_ZERO_COPY_FILE_NOT_FOUND = createError(
  'FST_ZERO_COPY_FILE_NOT_FOUND',
  'File not found',
  404
)

export const FST_ZERO_COPY_FILE_FORBIDDEN = createError(
  'FST_ZERO_COPY_FILE_FORBIDDEN',
  'Permission denied',
  403
)

export const FST_ZERO_COPY_NOT_A_FILE = createError(
  'FST_ZERO_COPY_NOT_A_FILE',
  'Not a regular file',
  404
)

export const FST_ZERO_COPY_FILE_OPEN_FAILED = createError(
  'FST_ZERO_COPY_FILE_OPEN_FAILED',
  'fastify-zero-copy: the file could not be opened (%s)',
  500
)

export const FST_ZERO_COPY_PRECONDITION_FAILED = createError(
  'FST_ZERO_COPY_PRECONDITION_FAILED',
  'Precondition Failed',
  412
)

export const FST_ZERO_COPY_RANGE_NOT_SATISFIABLE = createError(
  'FST_ZERO_COPY_RANGE_NOT_SATISFIABLE',
  'Range Not Satisfiable',
  416
)

export const FST_ZERO_COPY_FILE_CHANGED = createError(
  'FST_ZERO_COPY_FILE_CHANGED',
  'fastify-zero-copy: the file changed during the transfer (%s); the connection is closed',
  500
)

export const FST_ZERO_COPY_STATIC_BAD_PATH = createError(
  'FST_ZERO_COPY_STATIC_BAD_PATH',
  'Bad Request: %s',
  400
)

export const FST_ZERO_COPY_STATIC_FORBIDDEN = createError(
  'FST_ZERO_COPY_STATIC_FORBIDDEN',
  'Forbidden',
  403
)

export const FST_ZERO_COPY_STATIC_UNCONTAINED = createError(
  'FST_ZERO_COPY_STATIC_UNCONTAINED',
  'fastify-zero-copy/static: files cannot be opened beneath the root on this machine (%s); refusing to serve a directory without the kernel\'s containment',
  500
)

export const FST_ZERO_COPY_STATIC_INVALID_ROOT = createError(
  'FST_ZERO_COPY_STATIC_INVALID_ROOT',
  'fastify-zero-copy/static: invalid "root": %s',
  500,
  TypeError
)

export const FST_ZERO_COPY_STATIC_LIST_NOT_ACCEPTABLE = createError(
  'FST_ZERO_COPY_STATIC_LIST_NOT_ACCEPTABLE',
  'Not Acceptable: this listing has no html render (the "list.render" option); ask for format=json',
  406
)
