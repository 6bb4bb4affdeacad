{
  "targets": [
    {
      "target_name": "shoal_native",
      "sources": [
        "native/addon.cc",
        "native/ripemd160.cc",
        "native/crc32c.cc",
        "native/file_lock.cc",
        "native/frame_mac.cc",
        "native/shared_memory.cc",
        "native/primary_index.cc",
        "native/primary_index_wrap.cc",
        "native/index_image.cc",
        "native/batch_write.cc",
        "native/record_arena.cc",
        "native/block_device.cc",
        "native/io_backend.cc",
        "native/io_pool.cc",
        "native/io_uring.cc",
        "native/storage_format.cc",
        "native/storage_scan.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++20", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fexceptions"],
      "ldflags": ["-lrt", "-lpthread", "-ldl"],
      "libraries": ["-lrt", "-lpthread", "-ldl"]
    }
  ]
}
