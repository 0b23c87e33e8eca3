#pragma once
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
Result<std::unique_ptr<vmm::Backend>> select_backend(const Context& ctx, VmmChoice choice,
                                                     std::string& why);

}  // namespace fcvm::vm
