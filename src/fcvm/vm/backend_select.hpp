#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "fcvm/util/result.hpp"
#include "fcvm/vm/context.hpp"
#include "fcvm/vm/options.hpp"
#include "fcvm/vmm/backend.hpp"

namespace fcvm::vm {

// --vmm auto|qemu|firecracker. auto (no choice) picks Firecracker when its binary and a KVM that
// boots are present, else QEMU; `why` says which and why. An explicit but unavailable choice is an
// error (kUnavailable) before anything is created.
// jailer (RunOptions::jailer): Firecracker runs through its jailer when "on", or when "auto" and
// this process is root with a jailer found (Context::jailer_bin). The jail's user and group are
// k_jail_id_base + the calling process's pid: unique among live VMs (each has its own monitor,
// which calls this), never 0, and nothing to allocate or free.
inline constexpr uint32_t k_jail_id_base = 1u << 30;
Result<std::unique_ptr<vmm::Backend>> select_backend(const Context& ctx, VmmChoice choice,
                                                     std::string& why,
                                                     const std::string& jailer = "auto");

}  // namespace fcvm::vm
