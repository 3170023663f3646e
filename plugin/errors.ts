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

export const FST_ZERO_COPY_STATIC_UNCONTAINED = createError(
  'FST_ZERO_COPY_STATIC_UNCONTAINED',
  'fastify-zero-copy/static: files cannot be opened beneath the root on this machine (%s); refusing to serve a directory without the kernel\'s containment',
  500
)

export const FST_ZERO_COPY_STATIC_LIST_NOT_ACCEPTABLE = createError(
  'FST_ZERO_COPY_STATIC_LIST_NOT_ACCEPTABLE',
  'Not Acceptable: this listing has no html render (the "list.render" option); ask for format=json',
  406
)

// @fastify/static's own errors, with its codes, messages, statuses and classes: /static is a
// drop-in, and an application's error handler (or a test) that checks `FST_STATIC_*` keeps
// working. Where this package has an error that means the same, it is one of these.
export const FST_STATIC_INVALID_OPTION = createError(
  'FST_STATIC_INVALID_OPTION',
  '"%s" option %s'
)

export const FST_STATIC_INVALID_OPTION_VALUE = createError(
  'FST_STATIC_INVALID_OPTION_VALUE',
  '"%s" option %s',
  500,
  TypeError
)

export const FST_STATIC_MULTIROOT_LIST_CONFLICT = createError(
  'FST_STATIC_MULTIROOT_LIST_CONFLICT',
  'multi-root with list option is not supported',
  500,
  TypeError
)

export const FST_STATIC_INVALID_REDIRECT_URL = createError(
  'FST_STATIC_INVALID_REDIRECT_URL',
  'Invalid redirect URL: "%s"',
  400
)

export const FST_STATIC_FORBIDDEN_PATH = createError(
  'FST_STATIC_FORBIDDEN_PATH',
  'Forbidden',
  403
)

/** A path /static refuses (a climb above the root, a dotfile under `dotfiles: 'deny'`): @fastify/static's 403. */
export const FST_ZERO_COPY_STATIC_FORBIDDEN = FST_STATIC_FORBIDDEN_PATH

/** A root that cannot serve (missing, relative, not a directory, given twice): @fastify/static's code and message form. */
export const FST_ZERO_COPY_STATIC_INVALID_ROOT = createError(
  'FST_STATIC_INVALID_OPTION',
  '"root" option %s'
)
