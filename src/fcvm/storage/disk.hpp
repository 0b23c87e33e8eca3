#pragma once
// Per-VM writable disks over a read-only base image. The base is never written:
//  - qcow2 overlay (QEMU): a tiny qcow2 file whose backing file is the base;
//  - clone (raw, Firecracker): a reflink (FICLONE) copy sharing all blocks with the base on
//    filesystems that support it (XFS with reflink, btrfs), else a sparse-aware full copy.
#include <string>

#include "fcvm/sys/command_runner.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::storage {

enum class CloneMethod { kReflink, kCopy };

Result<> create_qcow2_overlay(sys::CommandRunner& runner, const std::string& base,
                              const std::string& overlay);
// Clones src to dst (dst must not exist). Tries FICLONE, falls back to a sparse copy unless
// reflink_only. Returns the method used.
Result<CloneMethod> clone_file(const std::string& src, const std::string& dst,
                               bool reflink_only = false);

}  // namespace fcvm::storage
