// The ceiling for any Fastify file server: sendfile(2) called synchronously on the main
// thread, the cheapest kernel path a handler can take (no pool, no ring, no copy through
// JavaScript). Not a product: it blocks the event loop while the socket is full and on every
// page-cache miss. bench/server.js kind `fastify-sendfile` loads it; bench/run.js builds it:
//   cc -O2 -shared -fPIC -I$(dirname $(which node))/../include/node -o sendfile.node sendfile.c
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <node_api.h>
#include <poll.h>
#include <stdint.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

static int64_t waits;  // times the socket was full and the main thread waited in poll(2)

// The call's first `n` arguments into argv; false (a TypeError thrown) when fewer were given.
static bool args(napi_env env, napi_callback_info info, size_t n, napi_value* argv, const char* usage) {
  size_t argc = n;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= n) return true;
  napi_throw_type_error(env, NULL, usage);
  return false;
}

static int64_t int64_arg(napi_env env, napi_value v) {
  int64_t out = -1;
  napi_get_value_int64(env, v, &out);
  return out;
}

// sendfile(socketFd, fileFd, offset, length) -> bytes sent (fewer when the peer left).
static napi_value Sendfile(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!args(env, info, 4, argv, "sendfile(socketFd, fileFd, offset, length)")) return NULL;
  int out = (int)int64_arg(env, argv[0]);
  int in = (int)int64_arg(env, argv[1]);
  off_t offset = (off_t)int64_arg(env, argv[2]);
  int64_t left = int64_arg(env, argv[3]);
  int64_t sent = 0;
  while (left > 0) {
    ssize_t n = sendfile(out, in, &offset, (size_t)left);
    if (n > 0) {
      sent += n;
      left -= n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      waits++;
      struct pollfd p = { .fd = out, .events = POLLOUT };
      if (poll(&p, 1, 5000) <= 0) break;  // a client that stopped reading: give up
    } else {
      break;  // the peer left, or the file ended early
    }
  }
  napi_value result;
  napi_create_int64(env, sent, &result);
  return result;
}

// cork(socketFd, on): TCP_CORK, so the headers leave with the body's first bytes (nginx's
// tcp_nopush, and what the plugin does).
static napi_value Cork(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!args(env, info, 2, argv, "cork(socketFd, on)")) return NULL;
  int fd = (int)int64_arg(env, argv[0]);
  bool on = false;
  napi_get_value_bool(env, argv[1], &on);
  int value = on ? 1 : 0;
  napi_value result;
  napi_get_boolean(env, setsockopt(fd, IPPROTO_TCP, TCP_CORK, &value, sizeof value) == 0, &result);
  return result;
}

static napi_value Waits(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_create_int64(env, waits, &result);
  return result;
}

static void export_function(napi_env env, napi_value exports, const char* name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

NAPI_MODULE_INIT() {
  export_function(env, exports, "sendfile", Sendfile);
  export_function(env, exports, "cork", Cork);
  export_function(env, exports, "waits", Waits);
  return exports;
}
