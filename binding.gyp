{
  "targets": [
    {
      "target_name": "zerocopy",
      "sources": ["native/addon.cc", "native/cached.cc", "native/beneath.cc", "native/fsclass.cc", "native/uring/ring.cc", "native/errno_name.cc", "native/file_stat.cc", "native/libstdcxx_floor.cc", "native/classic/classic.cc", "native/classic/disk.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "<!@(node scripts/build-flags.js cflags)"],
      "ldflags": ["<!@(node scripts/build-flags.js ldflags)"],
      "libraries": ["<!@(node scripts/build-flags.js libs)"]
    }
  ]
}
