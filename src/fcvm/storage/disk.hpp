#pragma once
// Per-VM writable disks over a read-only base image. The base is never written:
//  - qcow2 overlay (QEMU): a tiny qcow2 file whose backing file is the base, written in-process
//    (running qemu-img create costs ~25-30 ms of process start on the hot path);
//  - clone (raw, Firecracker): a reflink (FICLONE) copy sharing all blocks with the base on
//    filesystems that support it (XFS with reflink, btrfs), else a sparse-aware full copy.
#include <cstdint>
#include <string>

#include "fcvm/sys/command_runner.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::storage {

enum class CloneMethod { kReflink, kCopy };
enum class BackingFormat { kRaw, kQcow2 };

// Writes a new, empty qcow2 v3 image at `overlay` (must not exist; created O_EXCL, mode 0600)
// whose backing file is `backing` (stored as given: pass an absolute path) in `backing_format`,
// with virtual size `virtual_size` bytes (callers pass the backing image's virtual size; it is
// rounded up to 512-byte sectors, as QEMU sees a raw file). Clusters 64 KiB, refcount_order 4.
// The file is complete and valid (qemu-img check clean) or removed on any error. A backing path
// longer than 1023 bytes (QEMU's limit) or a size QEMU cannot open fails with kInvalidInput.
Result<> write_qcow2_overlay(const std::string& backing, BackingFormat backing_format,
                             uint64_t virtual_size, const std::string& overlay);
// Virtual size of a raw file (its length) or a qcow2 image (header field `size`).
Result<uint64_t> disk_virtual_size(const std::string& path);

// A qcow2 overlay over the raw image `base` (write_qcow2_overlay with the base's size). The
// runner is no longer used; it stays so that callers need not change.
Result<> create_qcow2_overlay(sys::CommandRunner& runner, const std::string& base,
                              const std::string& overlay);
// Clones src to dst (dst must not exist). Tries FICLONE, falls back to a sparse copy unless
// reflink_only. Returns the method used.
Result<CloneMethod> clone_file(const std::string& src, const std::string& dst,
                               bool reflink_only = false);

}  // namespace fcvm::storage
