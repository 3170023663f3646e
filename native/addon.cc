// Node-API surface of the engines (engine.h): at most one of each kind per Node environment
// (main thread, each worker), created on first use, woken on the environment's own libuv loop
// through a descriptor the engine makes readable (the ring's eventfd, the classic engine's
// epoll set: no extra thread), torn down at environment exit after everything owed came back.
//
// JS API (plugin/native.ts wraps it). `kind`, the last argument of the engine's calls: 0 the
// io_uring ring (the default), 1 the classic engine.
//   open([maxEntries[, kind]])     -> { ok, code, engine, sendZc, send, splice }: the engine
//     opens at the first call; a ring with at most maxEntries SQ entries if given (256 by
//     default, 32 at least)
//   start, startFile and openFile throw code RING_BROKEN once io_uring_enter failed for good
//   start(fd, uint8array, zc, slice, depth, done, released, zcNext, kind) -> id
//     done(errCode|null, zcBytes, copyBytes, fallbacks, spliceBytes, zcNext): every result is
//     in; the socket is free (zcNext: the socket's next MSG_ZEROCOPY id, classic engine)
//     released(notifications, copied): every CQE is in; the body is no longer referenced
//   startFile(fd, fileFd, offset, length, chunk, done, released, depth, pollFirst, remote, kind) -> id
//     the same callbacks; done's fifth argument is the bytes spliced from the file;
//     pollFirst: the socket was found full, the first round waits for POLLOUT
//   readCached(fileFd, buffer, offset) -> bytes read into buffer without waiting for a device
//     (preadv2 RWF_NOWAIT; fewer where the file ends), or -1: the ordinary read's.
//   sendCached(fd, fileFd, offset, length) -> bytes sent on this thread by sendfile(2), only
//     if the whole range is in the page cache (0 otherwise): the ring sends the rest
//   abort(id, kind), progress(id, kind) -> bytes | -1, stats(kind) -> {...}, setPinBudget(bytes, kind)
//     abort of an op that finished but is not released: Node let go of its connection (the
//     engine lets go too: Engine::Abort)
//   cork(fd, on) -> whether TCP_CORK was set; an op uncorks its socket behind its first send
//   or drain (through the ring, kernel 6.7+), else after its first chain or round
//   openFile(path, done) -> undefined; done(err, fd) once: opened read-only by IORING_OP_OPENAT
//   openCached(path) -> fd, or -1 when the lookup is not all in the dentry cache (openFile
//     then); throws (errno code) when the open failed (ENOENT, EACCES, ...)
//   openRoot(path) -> an O_PATH descriptor of the directory, the plugin's (beneath.h); throws
//     (errno code; ENOSYS or EPERM when openat2 is refused)
//   openBeneathCached(dirfd, path, kind, resolve[, quiet]) -> fd, or -1 when it must be opened
//     off this thread (openBeneath); throws (errno code) for the open's answer, or with quiet
//     returns it as -errno (never -1: EPERM goes off the thread). kind 0 a file, 1 a
//     directory; dirfd a descriptor the plugin owns, or AT_FDCWD for a directory
//   openBeneath(dirfd, path, kind, resolve, done[, engineKind[, walk]]) -> undefined;
//     done(err, fd) once, the open done by the engine (the ring's IORING_OP_OPENAT2, a classic
//     disk thread); walk: by the walk whatever the mode (the classic engine only; for tests)
//   beneathMode() -> 'openat2' | 'walk': how this process opens beneath a root (beneath.h)
#include <napi.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <fcntl.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "beneath.h"
#include "cached.h"
#include "errno_name.h"
#include "fsclass.h"
#include "classic/classic.h"
#include "uring/ring.h"

namespace zerocopy {
namespace {

constexpr unsigned kTeardownDrainMs = 2000;
// Backoff of the retry timer while the kernel refuses submits (EAGAIN, EBUSY): soon enough
// that a lone response hardly notices a short refusal, rare enough not to spin on a long one.
constexpr uint64_t kRetryFirstMs = 1;
constexpr uint64_t kRetryMaxMs = 100;

std::string ErrnoName(int err) {
  return ErrnoToName(err);
}

Napi::Error ErrnoError(Napi::Env env, int err, const char* what) {
  Napi::Error e = Napi::Error::New(env, std::string(what) + ": " + strerror(err));
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("errno", Napi::Number::New(env, -err));
  return e;
}

// Nothing here may end the process (std::terminate, napi_fatal_error). Node marks an
// environment stopping (worker.terminate()) from another thread while its JavaScript still
// runs; every Node-API call that could run JavaScript (napi_coerce_to_bool, napi_set_property,
// napi_make_callback, napi_throw, ...) then fails. node-addon-api throws on a failed status,
// its wrapper's napi_throw fails too and it rethrows out of a C frame (std::terminate); a
// pending exception that is no object (V8's termination) sends Napi::Error's constructor to
// napi_fatal_error. Hence:
// - every JS entry point is Entry<>: one try around all of it, the error thrown by the C API
//   and its failure ignored (ThrowQuietly): a stopping environment has nobody to tell;
// - arguments are read by calls that run no JavaScript (Truthy, not ToBoolean);
// - JavaScript is called back through napi_make_callback itself, every status looked at;
// - libuv callbacks and teardown hooks catch everything;
// - NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS (binding.gyp) for what node-addon-api still
//   does itself (Napi::Error's constructor, the module's registration).
// What a refused call leaves (ops, descriptors, references) is the teardown's: OnCleanup
// drains the engine, the Owned hook closes the descriptors.

// Throws `error` into JavaScript, unless an exception is already pending (it goes first) or
// the environment is stopping (napi_throw refuses: nobody is left to catch it).
void ThrowQuietly(napi_env env, const Napi::Error& error) noexcept {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) != napi_ok || pending) return;
  napi_value value = nullptr;
  try {
    value = error.Value();
  } catch (...) {
    value = nullptr;
  }
  if (value != nullptr) {
    napi_throw(env, value);
  } else {
    napi_throw_error(env, nullptr, "fastify-zero-copy: native call failed");
  }
}

void ThrowQuietly(napi_env env, const char* message) noexcept {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) != napi_ok || pending) return;
  napi_throw_error(env, nullptr, message);
}

// JavaScript truthiness read without napi_coerce_to_bool, which refuses in a stopping
// environment: these getters only read the value.
bool Truthy(const Napi::Value& value) noexcept {
  napi_env env = value.Env();
  napi_valuetype type = napi_undefined;
  if (value.IsEmpty() || napi_typeof(env, value, &type) != napi_ok) return false;
  switch (type) {
    case napi_undefined:
    case napi_null:
      return false;
    case napi_boolean: {
      bool b = false;
      return napi_get_value_bool(env, value, &b) == napi_ok && b;
    }
    case napi_number: {
      double d = 0;
      return napi_get_value_double(env, value, &d) == napi_ok && d != 0 && d == d;
    }
    case napi_string: {
      size_t length = 0;
      return napi_get_value_string_utf8(env, value, nullptr, 0, &length) == napi_ok && length > 0;
    }
    case napi_bigint: {
      int64_t v = 0;
      bool lossless = true;
      return napi_get_value_bigint_int64(env, value, &v, &lossless) == napi_ok && (v != 0 || !lossless);
    }
    default:
      return true;  // objects, functions, symbols
  }
}

// A path as a C string. Empty, or with a NUL inside (which would cut the C string short), it
// names no file: ENOENT.
std::string PathArg(const Napi::Value& value, const char* what) {
  std::string path = value.As<Napi::String>().Utf8Value();
  if (path.empty() || path.find('\0') != std::string::npos) throw ErrnoError(value.Env(), ENOENT, what);
  return path;
}

// The byte range of a file call, arguments 2 (offset) and 3 (length), already checked to be
// numbers: safe non-negative integers whose sum is safe too, else a RangeError.
struct FileRange {
  uint64_t offset;
  uint64_t length;
};

FileRange FileRangeArgs(const Napi::CallbackInfo& info, const char* what) {
  double offset = info[2].As<Napi::Number>().DoubleValue();
  double length = info[3].As<Napi::Number>().DoubleValue();
  if (!(offset >= 0 && length >= 0 && offset + length <= 9007199254740991.0)) {
    throw Napi::RangeError::New(info.Env(), std::string(what) + ": offset and length must be safe non-negative integers");
  }
  return FileRange{static_cast<uint64_t>(offset), static_cast<uint64_t>(length)};
}

// Every file descriptor the plugin opened or duplicated in this environment, until it closes
// it. A terminated worker never finishes its responses, so their descriptors would stay open
// with nobody to close them: the environment's teardown closes what is left here.
struct Owned {
  // Counted by hand: std::shared_ptr binds glibc and libstdc++ symbols newer than the
  // prebuilds' floor. Held by the addon, the ring's binding and the teardown hook.
  void Ref() { refs++; }
  void Unref() {
    if (--refs == 0) delete this;
  }
  int refs = 1;  // one environment's thread only
  std::unordered_set<int> open;     // the plugin's, closed by closeFile or at teardown

  int Adopt(int fd) {
    if (fd >= 0) open.insert(fd);
    return fd;
  }
  void CloseAll() {
    for (int fd : open) close(fd);
    open.clear();
  }
};

// What the environment holds while an engine lives. Deleted when both its handles closed.
struct Binding {
  napi_env env = nullptr;
  Engine* engine = nullptr;
  int kind = 0;  // index in Addon::bindings_: kIoUring or kClassic
  uv_poll_t poll{};
  // Reaps and submits again when no CQE will: SQEs the kernel refused for now, ops waiting
  // for room in the SQ (backoff kRetryFirstMs doubling to kRetryMaxMs), finishes no CQE
  // announces (at once). Referenced exactly when the poll handle is.
  uv_timer_t retry{};
  uint64_t backoffMs = kRetryFirstMs;
  bool retrying = false;  // OnReadable runs from the timer
  int handles = 0;        // handles to close before the Binding is deleted
  napi_async_cleanup_hook_handle hook = nullptr;
  struct Pending {
    Napi::Reference<Napi::Uint8Array> body;  // keeps the pages alive until released (empty for a file)
    Napi::FunctionReference callback;        // called once, when the op finished
    Napi::FunctionReference released;        // called once, when the op is released
  };
  std::unordered_map<uint32_t, Pending> pending;
  std::unordered_map<uint32_t, Napi::FunctionReference> opening;  // openFile callbacks, by open id
  Binding** owner = nullptr;  // the addon's pointer to us, cleared at teardown
  Owned* owned = nullptr;  // a reference of its own, dropped when the binding is deleted

  ~Binding() {
    if (owned != nullptr) owned->Unref();
  }

  // Takes the closes the engine finished: it is idle only once they are taken. (A descriptor
  // handed to the engine's close left `owned->open` when it was handed over.)
  void ForgetClosed() {
    std::vector<int> closed;
    engine->TakeClosed(&closed);
  }

  void UpdateRef() {
    // While any CQE is owed, the loop must stay alive to reap it (a broken ring's ops, once
    // failed, are not waited for: their CQEs may never come).
    for (uv_handle_t* h : {reinterpret_cast<uv_handle_t*>(&poll), reinterpret_cast<uv_handle_t*>(&retry)}) {
      if (engine->NeedsLoop()) {
        uv_ref(h);
      } else {
        uv_unref(h);
      }
    }
  }

  // After anything that may have left work no CQE will announce (see Engine::Due).
  void Kick() {
    bool fired = retrying;
    retrying = false;
    switch (engine->Pending()) {
      case Engine::Due::kNothing:
        uv_timer_stop(&retry);
        backoffMs = kRetryFirstMs;
        break;
      case Engine::Due::kNow:
        uv_timer_start(&retry, &Binding::OnRetry, 0, 0);
        break;
      case Engine::Due::kRetry:
        // Still refused after a retry: wait longer. Otherwise a retry already armed stands.
        if (fired) {
          backoffMs = std::min(backoffMs * 2, kRetryMaxMs);
          uv_timer_start(&retry, &Binding::OnRetry, backoffMs, 0);
        } else if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&retry))) {
          uv_timer_start(&retry, &Binding::OnRetry, backoffMs, 0);
        }
        break;
    }
    UpdateRef();
  }

  void OnReadable() {
    std::vector<Engine::Finished> finished;
    std::vector<Engine::Released> released;
    engine->Reap(&finished, &released);
    std::vector<Engine::Opened> opened;
    engine->TakeOpened(&opened);  // before any JS runs
    for (const Engine::Opened& o : opened) owned->Adopt(o.result);
    ForgetClosed();
    Napi::Env e(env);
    Napi::HandleScope scope(e);
    for (const Engine::Finished& f : finished) {
      auto it = pending.find(f.id);
      if (it == pending.end() || it->second.callback.IsEmpty()) continue;
      Napi::Function cb = it->second.callback.Value();
      it->second.callback.Reset();
      Napi::Value err = f.result.error == 0 ? e.Null()
                                            : Napi::String::New(e, ErrnoName(f.result.error));
      Call(cb, {err, Napi::Number::New(e, static_cast<double>(f.result.zcBytes)),
                Napi::Number::New(e, static_cast<double>(f.result.copyBytes)),
                Napi::Number::New(e, f.result.fallbacks),
                Napi::Number::New(e, static_cast<double>(f.result.spliceBytes)),
                Napi::Number::New(e, f.result.zcNext)});
    }
    for (const Engine::Released& r : released) {
      auto it = pending.find(r.id);
      if (it == pending.end()) continue;
      Napi::FunctionReference cb = std::move(it->second.released);
      pending.erase(it);  // drops the body
      if (cb.IsEmpty()) continue;
      Call(cb.Value(), {Napi::Number::New(e, r.notifications), Napi::Number::New(e, r.copied)});
    }
    for (const Engine::Opened& o : opened) {
      auto it = opening.find(o.id);
      if (it == opening.end()) {
        if (o.result >= 0 && owned->open.erase(o.result) != 0) close(o.result);  // cannot happen: every open has its callback
        continue;
      }
      Napi::FunctionReference cb = std::move(it->second);
      opening.erase(it);
      Napi::Value err = o.result >= 0 ? e.Null() : Napi::String::New(e, ErrnoName(-o.result));
      Call(cb.Value(), {err, Napi::Number::New(e, o.result >= 0 ? o.result : -1)});
    }
    if (engine != nullptr) Kick();
  }

  // napi_make_callback runs the microtasks and nextTicks the callback queued, as Node's own
  // I/O callbacks do. It fails when the environment is stopping (nothing is owed to it then:
  // teardown finishes) or when the callback threw. The plugin's callbacks are to catch what
  // the application's code throws; one that escapes is reported as Node reports an exception
  // from any I/O callback: 'uncaughtException' (a worker's 'error'). napi_fatal_exception
  // refuses in a stopping environment, where the exception is V8's termination.
  void Call(napi_value fn, const std::initializer_list<napi_value>& args) noexcept {
    napi_value global = nullptr;
    napi_value result = nullptr;
    if (napi_get_global(env, &global) != napi_ok) return;
    if (napi_make_callback(env, nullptr, global, fn, args.size(), args.begin(), &result) == napi_ok) return;
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) return;
    napi_value exception = nullptr;
    if (napi_get_and_clear_last_exception(env, &exception) != napi_ok) return;
    napi_fatal_exception(env, exception);
  }

  // From libuv: nothing may leave these (a C frame). What OnReadable could throw (a failed
  // handle scope, bad_alloc) loses at most this round's callbacks; the engine's state is its
  // own and the next round or teardown goes on from it.
  void ReadableFromLoop() noexcept {
    try {
      OnReadable();
    } catch (...) {
      if (engine != nullptr) Kick();
    }
  }

  static void OnPoll(uv_poll_t* handle, int /*status*/, int /*events*/) {
    // status < 0 would be an error on the eventfd itself; reaping is still right.
    static_cast<Binding*>(handle->data)->ReadableFromLoop();
  }

  static void OnRetry(uv_timer_t* handle) {
    Binding* b = static_cast<Binding*>(handle->data);
    b->retrying = true;
    b->ReadableFromLoop();  // Reap: settles, pumps and submits again
  }

  static void OnClosed(uv_handle_t* h) {
    Binding* self = static_cast<Binding*>(h->data);
    if (--self->handles > 0) return;
    if (self->hook != nullptr) napi_remove_async_cleanup_hook(self->hook);
    delete self;
  }

  static void OnCleanup(napi_async_cleanup_hook_handle handle, void* arg) {
    Binding* b = static_cast<Binding*>(arg);
    b->hook = handle;
    std::vector<Engine::Released> released;
    try {
      b->engine->Drain(kTeardownDrainMs, &released);
      b->ForgetClosed();
    } catch (...) {
      // bad_alloc while collecting: the engine's delete below still waits for nothing less
      // than its own exit does, and the environment's heap goes with it.
    }
    b->pending.clear();  // the environment is going away: no callbacks, drop the references
    b->opening.clear();  // (Drain closed what the opens in flight opened)
    uv_poll_stop(&b->poll);
    uv_timer_stop(&b->retry);
    delete b->engine;  // io_uring_queue_exit, or the epoll set's close
    b->engine = nullptr;
    if (b->owner != nullptr) *b->owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&b->poll), &Binding::OnClosed);
    uv_close(reinterpret_cast<uv_handle_t*>(&b->retry), &Binding::OnClosed);
  }
};

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    // Defined through Entry<>, not InstanceMethod: see the policy above. A failure here (the
    // environment stopping while the module loads) leaves the exports empty and throws quietly.
    try {
      DefineAddon(exports, {
                               Method<&Addon::Open>("open"),
                               Method<&Addon::Start>("start"),
                               Method<&Addon::StartFile>("startFile"),
                               Method<&Addon::SendCached>("sendCached"),
                               Method<&Addon::ReadCached>("readCached"),
                               Method<&Addon::Abort>("abort"),
                               Method<&Addon::Progress>("progress"),
                               Method<&Addon::Stats>("stats"),
                               Method<&Addon::SetPinBudget>("setPinBudget"),
                               Method<&Addon::Cork>("cork"),
                               Method<&Addon::OpenFile>("openFile"),
                               Method<&Addon::OpenCached>("openCached"),
                               Method<&Addon::Dup>("dup"),
                               Method<&Addon::IsRemoteFile>("isRemote"),
                               Method<&Addon::CloseFile>("closeFile"),
                               Method<&Addon::AdoptFile>("adopt"),
                               Method<&Addon::OpenRootDir>("openRoot"),
                               Method<&Addon::OpenBeneathCachedFile>("openBeneathCached"),
                               Method<&Addon::OpenBeneathFile>("openBeneath"),
                               Method<&Addon::BeneathModeName>("beneathMode"),
                           });
      RemoteMountsPresent();  // opens the mount table now: one descriptor for the process's life
    } catch (const Napi::Error& error) {
      ThrowQuietly(env, error);
      return;
    } catch (...) {
      ThrowQuietly(env, "fastify-zero-copy: the addon could not be set up");
      return;
    }
    // Runs after the ring's teardown (cleanup hooks run newest first, and the ring's is added
    // later), when every op has closed its own duplicates.
    owned_->Ref();
    if (napi_add_env_cleanup_hook(env, [](void* arg) {
      Owned* held = static_cast<Owned*>(arg);
      held->CloseAll();
      held->Unref();
    }, owned_) != napi_ok) {
      owned_->Unref();
    }
  }

  ~Addon() {
    for (Binding* b : bindings_) {
      if (b != nullptr) b->owner = nullptr;
    }
    owned_->Unref();
  }

 private:
  using Callback = Napi::Value (Addon::*)(const Napi::CallbackInfo&);

  // Every JS entry point: the CallbackInfo, the instance and the method all inside one try,
  // the error thrown through the C API and never rethrown (see the policy above).
  template <Callback method>
  static napi_value Entry(napi_env env, napi_callback_info cbinfo) noexcept {
    try {
      Napi::CallbackInfo info(env, cbinfo);
      void* data = nullptr;
      if (napi_get_instance_data(env, &data) != napi_ok || data == nullptr) return nullptr;
      return (static_cast<Addon*>(data)->*method)(info);
    } catch (const Napi::Error& error) {
      ThrowQuietly(env, error);
    } catch (const std::exception& error) {
      ThrowQuietly(env, error.what());
    } catch (...) {
      ThrowQuietly(env, "fastify-zero-copy: native call failed");
    }
    return nullptr;
  }

  template <Callback method>
  static AddonProp Method(const char* name) {
    napi_property_descriptor desc{};
    desc.utf8name = name;
    desc.method = &Addon::Entry<method>;
    desc.attributes = napi_default;
    return AddonProp(desc);
  }

  // open([maxEntries[, kind]]): the environment's engine of that kind (kIoUring, the default,
  // or kClassic), created at the first call.
  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    unsigned maxEntries = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
    int kind = KindArg(info, 1);
    if (bindings_[kind] == nullptr && openError_[kind] == 0) openError_[kind] = CreateBinding(env, kind, maxEntries);
    Binding* b = bindings_[kind];
    Napi::Object out = Napi::Object::New(env);
    out.Set("ok", Napi::Boolean::New(env, b != nullptr));
    out.Set("code", openError_[kind] == 0 ? env.Null() : Napi::String::New(env, ErrnoName(openError_[kind])));
    out.Set("engine", b == nullptr ? env.Null() : Napi::String::New(env, b->engine->Name()));
    out.Set("sendZc", Napi::Boolean::New(env, b != nullptr && b->engine->SupportsZeroCopy()));
    out.Set("send", Napi::Boolean::New(env, b != nullptr && b->engine->SupportsSend()));
    out.Set("splice", Napi::Boolean::New(env, b != nullptr && b->engine->SupportsFiles()));
    return out;
  }

  static int KindArg(const Napi::CallbackInfo& info, size_t at) {
    return info.Length() > at && info[at].IsNumber() && info[at].As<Napi::Number>().Int32Value() == kClassic ? kClassic : kIoUring;
  }

  int CreateBinding(Napi::Env env, int kind, unsigned maxEntries) {
    Engine* engine = nullptr;
    int ret;
    if (kind == kClassic) {
      classic::Classic* c = nullptr;
      ret = classic::Classic::Create(&c);
      engine = c;
    } else {
      Ring* ring = nullptr;
      ret = Ring::Create(&ring, maxEntries);
      engine = ring;
    }
    if (ret < 0) {
      delete engine;
      return -ret;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
      delete engine;
      return EINVAL;
    }
    Binding* b = new Binding();
    b->env = env;
    b->engine = engine;
    b->kind = kind;
    b->owned = owned_;
    owned_->Ref();
    b->poll.data = b;
    b->retry.data = b;
    uv_timer_init(loop, &b->retry);  // cannot fail
    b->handles = 1;
    int uvret = uv_poll_init(loop, &b->poll, engine->EventFd());
    if (uvret == 0) {
      b->handles = 2;
      uvret = uv_poll_start(&b->poll, UV_READABLE, &Binding::OnPoll);
    }
    if (uvret != 0) {
      // uv_poll_init failing leaves nothing to close; after it, the handle must be closed.
      delete engine;
      b->engine = nullptr;
      if (b->handles == 2) uv_close(reinterpret_cast<uv_handle_t*>(&b->poll), &Binding::OnClosed);
      uv_close(reinterpret_cast<uv_handle_t*>(&b->retry), &Binding::OnClosed);
      return -uvret;
    }
    b->UpdateRef();
    if (napi_add_async_cleanup_hook(env, &Binding::OnCleanup, b, &b->hook) != napi_ok) {
      b->hook = nullptr;
    }
    b->owner = &bindings_[kind];
    bindings_[kind] = b;
    return 0;
  }

  // A start the engine refused. A broken ring says so (code RING_BROKEN, the plugin's
  // fallback reason 'ring-broken'); the errno otherwise (EMFILE on dup, ...). Either way the
  // engine may have work to report first (a start can be what found it broken).
  Napi::Error StartError(Napi::Env env, Binding* b, int err, const char* what) {
    b->Kick();
    int broken = b->engine->Broken();
    if (broken == 0) return ErrnoError(env, err, what);
    Napi::Error e = Napi::Error::New(env, std::string("the io_uring ring is broken (io_uring_enter failed with ") +
                                              ErrnoName(broken) + "): bodies go by Node");
    e.Set("code", Napi::String::New(env, "RING_BROKEN"));
    e.Set("cause", Napi::String::New(env, ErrnoName(broken)));
    return e;
  }

  // The engine named by argument `at` (see KindArg), which must be open.
  Binding* Require(const Napi::CallbackInfo& info, size_t at) {
    Binding* b = bindings_[KindArg(info, at)];
    if (b == nullptr || b->engine == nullptr) throw ErrnoError(info.Env(), ENXIO, "the engine is not open");
    return b;
  }

  // start(fd, body, zc, slice, depth, done, released, zcNext, kind)
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Binding* b = Require(info, 8);
    if (info.Length() < 6 || !info[0].IsNumber() || !info[1].IsTypedArray() ||
        info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array || !info[3].IsNumber() ||
        !info[4].IsNumber() || !info[5].IsFunction() || !(info[6].IsUndefined() || info[6].IsFunction())) {
      throw Napi::TypeError::New(env, "start(fd, Uint8Array, zc, slice, depth, done[, released])");
    }
    int fd = info[0].As<Napi::Number>().Int32Value();
    Napi::Uint8Array body = info[1].As<Napi::Uint8Array>();
    bool zc = Truthy(info[2]);
    uint32_t slice = info[3].As<Napi::Number>().Uint32Value();
    uint32_t depth = info[4].As<Napi::Number>().Uint32Value();
    uint32_t zcNext = info[7].IsNumber() ? info[7].As<Napi::Number>().Uint32Value() : 0;
    uint8_t* data = body.Data();
    size_t length = body.ByteLength();
    Binding::Pending p = Hold(info);
    p.body = Napi::Persistent(body);
    int64_t id = b->engine->Start(fd, data, length, zc, slice, depth, zcNext);
    if (id < 0) throw StartError(env, b, static_cast<int>(-id), "send");
    Track(b, id, std::move(p));
    return Napi::Number::New(env, static_cast<double>(id));
  }

  // startFile(fd, fileFd, offset, length, chunk, done, released, depth, pollFirst, remote, kind)
  Napi::Value StartFile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Binding* b = Require(info, 10);
    bool ok = info.Length() >= 6 && info[5].IsFunction() && (info[6].IsUndefined() || info[6].IsFunction());
    for (size_t i = 0; ok && i < 5; i++) ok = info[i].IsNumber();
    ok = ok && (info[7].IsUndefined() || info[7].IsNumber());
    if (!ok) throw Napi::TypeError::New(env, "startFile(fd, fileFd, offset, length, chunk, done[, released[, depth[, pollFirst]]])");
    FileRange range = FileRangeArgs(info, "startFile");
    int fd = info[0].As<Napi::Number>().Int32Value();
    int file = info[1].As<Napi::Number>().Int32Value();
    uint32_t chunk = info[4].As<Napi::Number>().Uint32Value();
    uint32_t depth = info[7].IsNumber() ? info[7].As<Napi::Number>().Uint32Value() : 1;
    bool pollFirst = Truthy(info[8]);
    bool remote = Truthy(info[9]);
    Binding::Pending p = Hold(info);
    int64_t id = b->engine->StartFile(fd, file, range.offset, range.length, chunk, depth, pollFirst, remote);
    if (id < 0) throw StartError(env, b, static_cast<int>(-id), "file");
    Track(b, id, std::move(p));
    return Napi::Number::New(env, static_cast<double>(id));
  }

  Napi::Value SendCached(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool ok = info.Length() >= 4;
    for (size_t i = 0; ok && i < 4; i++) ok = info[i].IsNumber();
    if (!ok) throw Napi::TypeError::New(env, "sendCached(fd, fileFd, offset, length)");
    FileRange range = FileRangeArgs(info, "sendCached");
    uint64_t sent = zerocopy::SendCached(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value(),
                                         range.offset, range.length);
    return Napi::Number::New(env, static_cast<double>(sent));
  }

  // readCached(fileFd, buffer, offset) -> the bytes read into the whole of `buffer` from
  // `offset` without waiting for a device (fewer only where the file ends), or -1.
  Napi::Value ReadCached(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsTypedArray() || !info[2].IsNumber()) {
      throw Napi::TypeError::New(env, "readCached(fileFd, buffer, offset)");
    }
    Napi::TypedArray array = info[1].As<Napi::TypedArray>();
    if (array.TypedArrayType() != napi_uint8_array) throw Napi::TypeError::New(env, "readCached: buffer must be a Uint8Array");
    Napi::Uint8Array bytes = array.As<Napi::Uint8Array>();
    double offset = info[2].As<Napi::Number>().DoubleValue();
    if (!(offset >= 0 && offset + static_cast<double>(bytes.ByteLength()) <= 9007199254740991.0)) {
      throw Napi::RangeError::New(env, "readCached: offset must be a safe non-negative integer");
    }
    int64_t got = zerocopy::ReadCached(info[0].As<Napi::Number>().Int32Value(), bytes.Data(), bytes.ByteLength(),
                                       static_cast<uint64_t>(offset));
    return Napi::Number::New(env, static_cast<double>(got));
  }

  // An op's callbacks (arguments 5 and 6), held before the engine starts it: once the kernel
  // has the body, nothing that can throw may stand between it and the body's reference.
  static Binding::Pending Hold(const Napi::CallbackInfo& info) {
    Binding::Pending p;
    p.callback = Napi::Persistent(info[5].As<Napi::Function>());
    if (info[6].IsFunction()) p.released = Napi::Persistent(info[6].As<Napi::Function>());
    return p;
  }

  // Keeps an op's references until it finished and was released. Only the map's node can
  // fail here (bad_alloc): then the op is aborted and its body's reference leaked, never
  // dropped while the kernel may read it.
  static void Track(Binding* b, int64_t id, Binding::Pending&& p) {
    try {
      b->pending.insert_or_assign(static_cast<uint32_t>(id), std::move(p));
    } catch (...) {
      p.body.SuppressDestruct();
      b->engine->Abort(static_cast<uint32_t>(id));
      b->Kick();
      throw;
    }
    b->Kick();
  }

  // abort(id, kind)
  Napi::Value Abort(const Napi::CallbackInfo& info) {
    Binding* b = Require(info, 1);
    b->engine->Abort(info[0].As<Napi::Number>().Uint32Value());
    b->Kick();  // an op that waited for room finishes at the next reap
    return info.Env().Undefined();
  }

  // progress(id, kind)
  Napi::Value Progress(const Napi::CallbackInfo& info) {
    Binding* b = Require(info, 1);
    return Napi::Number::New(info.Env(),
                             static_cast<double>(b->engine->Progress(info[0].As<Napi::Number>().Uint32Value())));
  }

  // stats(kind)
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Engine::Stats s{};
    Binding* b = bindings_[KindArg(info, 0)];
    if (b != nullptr && b->engine != nullptr) s = b->engine->GetStats();
    Napi::Object out = Napi::Object::New(env);
    out.Set("notifications", Napi::Number::New(env, static_cast<double>(s.notifications)));
    out.Set("copied", Napi::Number::New(env, static_cast<double>(s.copied)));
    out.Set("sends", Napi::Number::New(env, static_cast<double>(s.sends)));
    out.Set("pinnedBytes", Napi::Number::New(env, static_cast<double>(s.pinnedBytes)));
    out.Set("processPinnedBytes", Napi::Number::New(env, static_cast<double>(ProcessPinned().load(std::memory_order_relaxed))));
    out.Set("ops", Napi::Number::New(env, static_cast<double>(s.ops)));
    out.Set("strays", Napi::Number::New(env, static_cast<double>(s.strays)));
    out.Set("waiting", Napi::Number::New(env, static_cast<double>(s.waiting)));
    out.Set("waits", Napi::Number::New(env, static_cast<double>(s.waits)));
    out.Set("broken", s.broken == 0 ? env.Null() : Napi::String::New(env, ErrnoName(s.broken)));
    return out;
  }

  // setPinBudget(bytes, kind)
  Napi::Value SetPinBudget(const Napi::CallbackInfo& info) {
    Binding* b = Require(info, 1);
    b->engine->SetPinBudget(static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue()));
    return info.Env().Undefined();
  }

  // cork(fd, on): TCP_CORK on the socket, so the headers Node writes next wait for the body
  // and leave in the same segments (nginx's tcp_nopush). An op uncorks the socket once its
  // first chain or round completed; the plugin uncorks it itself when no op starts.
  // false: not corked (not TCP).
  Napi::Value Cork(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "cork(fd, on)");
    int on = Truthy(info[1]) ? 1 : 0;
    int fd = info[0].As<Napi::Number>().Int32Value();
    return Napi::Boolean::New(env, fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on) == 0);
  }

  // openFile(path, done[, kind]): opens the file read-only off this thread (the ring's
  // workers); done(err, fd) once, err an errno name or null. Throws (errno code) when the
  // engine cannot take the request (EOPNOTSUPP: the classic engine opens none).
  Napi::Value OpenFile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Binding* b = Require(info, 2);
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsFunction()) {
      throw Napi::TypeError::New(env, "openFile(path, done)");
    }
    std::string path = PathArg(info[0], "openFile");
    int64_t id = b->engine->OpenFile(path.c_str());
    if (id < 0) {
      b->Kick();
      throw ErrnoError(env, static_cast<int>(-id), "io_uring openat");
    }
    b->opening[static_cast<uint32_t>(id)] = Napi::Persistent(info[1].As<Napi::Function>());
    b->Kick();
    return env.Undefined();
  }

  // openCached(path): the descriptor, or -1 when the ring must open it (openFile); throws
  // (errno code) when this is the open's answer.
  Napi::Value OpenCached(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "openCached(path)");
    std::string path = PathArg(info[0], "openCached");
    int fd = zerocopy::OpenCached(path.c_str());
    if (fd == -EAGAIN) return Napi::Number::New(env, -1);
    if (fd < 0) throw ErrnoError(env, -fd, "openat2");
    return Napi::Number::New(env, owned_->Adopt(fd));
  }

  // openRoot(path)
  Napi::Value OpenRootDir(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "openRoot(path)");
    std::string path = PathArg(info[0], "openRoot");
    int fd = zerocopy::OpenRoot(path.c_str());
    if (fd < 0) throw ErrnoError(env, -fd, "openat2");
    return Napi::Number::New(env, owned_->Adopt(fd));
  }

  // The arguments of an open beneath a directory: (dirfd, path, kind, resolve). The directory
  // must be the plugin's own (a root it opened), so a stale or foreign number is refused
  // (EBADF) rather than resolved against whatever it names; AT_FDCWD only for a directory
  // (a root given per call, an absolute path of the application's).
  struct BeneathArgs {
    int dirfd;
    std::string path;
    BeneathKind kind;
    uint64_t resolve;
  };
  BeneathArgs ReadBeneathArgs(const Napi::CallbackInfo& info, const char* what) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsString() || !info[2].IsNumber() || !info[3].IsNumber()) {
      throw Napi::TypeError::New(env, std::string(what) + "(dirfd, path, kind, resolve)");
    }
    BeneathArgs a;
    a.dirfd = info[0].As<Napi::Number>().Int32Value();
    a.path = PathArg(info[1], what);
    a.kind = info[2].As<Napi::Number>().Int32Value() == 1 ? BeneathKind::kDirectory : BeneathKind::kFile;
    double resolve = info[3].As<Napi::Number>().DoubleValue();
    if (!(resolve >= 0 && resolve < 4294967296.0) || !BeneathResolveValid(static_cast<uint64_t>(resolve))) {
      throw Napi::RangeError::New(env, std::string(what) + ": resolve flags out of range");
    }
    a.resolve = static_cast<uint64_t>(resolve);
    bool cwd = a.dirfd == AT_FDCWD && a.kind == BeneathKind::kDirectory;
    if (!cwd && owned_->open.count(a.dirfd) == 0) throw ErrnoError(env, EBADF, what);
    return a;
  }

  // openBeneathCached(dirfd, path, kind, resolve[, quiet])
  Napi::Value OpenBeneathCachedFile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    BeneathArgs a = ReadBeneathArgs(info, "openBeneathCached");
    int fd = zerocopy::OpenBeneathCached(a.dirfd, a.path.c_str(), a.kind, a.resolve);
    if (fd == -EAGAIN) return Napi::Number::New(env, -1);
    if (fd < 0) {
      // A miss is a common answer (a pre-compressed sibling, an extension tried): an error
      // object and a throw cost ten times the failed lookup itself.
      if (info.Length() > 4 && info[4].IsBoolean() && info[4].As<Napi::Boolean>().Value()) return Napi::Number::New(env, fd);
      throw ErrnoError(env, -fd, "openat2");
    }
    return Napi::Number::New(env, owned_->Adopt(fd));
  }

  // openBeneath(dirfd, path, kind, resolve, done[, engineKind[, walk]])
  Napi::Value OpenBeneathFile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Binding* b = Require(info, 5);
    if (info.Length() < 5 || !info[4].IsFunction()) throw Napi::TypeError::New(env, "openBeneath(dirfd, path, kind, resolve, done)");
    BeneathArgs a = ReadBeneathArgs(info, "openBeneath");
    if (info.Length() > 6 && Truthy(info[6])) a.resolve |= kBeneathWalk;
    int64_t id = b->engine->OpenBeneath(a.dirfd, a.path.c_str(), a.kind, a.resolve);
    if (id < 0) {
      b->Kick();
      throw ErrnoError(env, static_cast<int>(-id), "openat2");
    }
    b->opening[static_cast<uint32_t>(id)] = Napi::Persistent(info[4].As<Napi::Function>());
    b->Kick();
    return env.Undefined();
  }

  // beneathMode()
  Napi::Value BeneathModeName(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), CurrentBeneathMode() == BeneathMode::kWalk ? "walk" : "openat2");
  }

  // dup(fd): the plugin's own reference to a caller's file (FileHandle or { fd }), taken at
  // the call, so that the caller closing theirs (or the collector closing a dropped
  // FileHandle) can never make the response read whatever file gets that number next.
  Napi::Value Dup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "dup(fd)");
    int fd = info[0].As<Napi::Number>().Int32Value();
    int own = fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0) throw ErrnoError(env, fd < 0 ? EBADF : errno, "dup");
    return Napi::Number::New(env, owned_->Adopt(own));
  }

  // adopt(fd): a descriptor the plugin opened through libuv becomes the environment's to close.
  Napi::Value AdoptFile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "adopt(fd)");
    owned_->Adopt(info[0].As<Napi::Number>().Int32Value());
    return env.Undefined();
  }

  // isRemote(fd): whether the file's filesystem may wait on a server or a daemon (fsclass.h).
  Napi::Value IsRemoteFile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "isRemote(fd)");
    return Napi::Boolean::New(env, zerocopy::IsRemote(info[0].As<Napi::Number>().Int32Value()));
  }

  // closeFile(fd, remote[, kind]): closes a descriptor the plugin owns: at once, or for a
  // remote file off this thread by the engine (the ring's close, or a disk thread). false when
  // the plugin no longer owns it here and must close it itself off this thread (no engine:
  // libuv's pool).
  Napi::Value CloseFile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "closeFile(fd, remote)");
    int fd = info[0].As<Napi::Number>().Int32Value();
    bool remote = Truthy(info[1]);  // read before the descriptor leaves `owned`
    if (owned_->open.erase(fd) == 0) return Napi::Boolean::New(env, true);  // not ours (any more)
    if (!remote) {
      close(fd);  // EIO on closing a read-only file leaves nothing to do
      return Napi::Boolean::New(env, true);
    }
    Binding* b = bindings_[KindArg(info, 2)];
    if (b == nullptr || b->engine == nullptr || b->engine->Broken() != 0) return Napi::Boolean::New(env, false);
    b->engine->CloseAsync(fd);
    b->Kick();
    return Napi::Boolean::New(env, true);
  }

  static constexpr int kIoUring = 0;
  static constexpr int kClassic = 1;
  Binding* bindings_[2] = {nullptr, nullptr};
  int openError_[2] = {0, 0};
  Owned* owned_ = new Owned();
};

}  // namespace
}  // namespace zerocopy

using zerocopy::Addon;
NODE_API_ADDON(Addon)
