// The qcow2 writer's inputs (backing path, backing format, virtual size) and the reader of a disk
// image's virtual size, which reads files a user may have replaced. A written overlay reads back
// with the size asked for (rounded up to 512-byte sectors); any file's bytes give a size or one
// error.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "fcvm/storage/disk.hpp"

using namespace fcvm;

namespace {
std::string scratch(const char* what) {
  return std::string("/dev/shm/fcvm-fuzz-qcow2-") + std::to_string(::getpid()) + "-" + what;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 9) return 0;
  if (data[0] & 1) {
    // Writer: 8 bytes of size, a format bit, the rest the backing path.
    uint64_t virtual_size = 0;
    std::memcpy(&virtual_size, data + 1, 8);
    auto format = (data[0] & 2) ? storage::BackingFormat::kQcow2 : storage::BackingFormat::kRaw;
    std::string backing(reinterpret_cast<const char*>(data) + 9, size - 9);
    auto overlay = scratch("overlay");
    ::unlink(overlay.c_str());
    if (storage::write_qcow2_overlay(backing, format, virtual_size, overlay)) {
      auto back = storage::disk_virtual_size(overlay);
      if (!back || *back != (virtual_size + 511) / 512 * 512) std::abort();
    } else if (::access(overlay.c_str(), F_OK) == 0) {
      std::abort();  // a failed write leaves no file
    }
    ::unlink(overlay.c_str());
  } else {
    // Reader: the input is the file.
    auto file = scratch("image");
    std::ofstream(file, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(data) + 1, static_cast<std::streamsize>(size - 1));
    (void)storage::disk_virtual_size(file);
    ::unlink(file.c_str());
  }
  return 0;
}
