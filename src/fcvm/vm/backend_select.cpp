#include "fcvm/vm/backend_select.hpp"

#include <unistd.h>

#include <fmt/format.h>

#include "fcvm/util/child_process.hpp"
#include "fcvm/vmm/qemu/backend.hpp"

namespace fcvm::vm {
namespace {
Result<> firecracker_available() {
  const char* bin = std::getenv("FCVM_FIRECRACKER_BIN");
  if (!find_executable(bin ? bin : "firecracker")) {
    return fail(ErrorCode::kUnavailable, "no firecracker binary in PATH");
  }
  if (::access("/dev/kvm", R_OK | W_OK) != 0) {
    return fail(ErrorCode::kUnavailable, "/dev/kvm is missing or not accessible");
  }
  return fail(ErrorCode::kUnavailable, "the Firecracker backend is not built into this fcvm");
}
}  // namespace

Result<std::unique_ptr<vmm::Backend>> select_backend(const Context& ctx, const std::string& choice,
                                                     std::string& why) {
  if (choice == "firecracker" || choice == "auto") {
    auto fc = firecracker_available();
    if (choice == "firecracker" && !fc) {
      return fail(ErrorCode::kUnavailable,
                  fmt::format("--vmm firecracker: not available: {}", fc.error().message()));
    }
    if (choice == "auto") why = fmt::format("firecracker not available ({}); ", fc.error().message());
  }
  if (choice != "auto" && choice != "qemu") {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid --vmm \"{}\": expected auto, qemu or firecracker", choice));
  }
  if (!find_executable("qemu-system-x86_64")) {
    return fail(ErrorCode::kUnavailable,
                "qemu-system-x86_64 not found: install it with scripts/install-deps.sh run");
  }
  std::string accel_why;
  vmm::qemu::QemuOptions options;
  options.accel = vmm::qemu::choose_accel(ctx.paths.kernel(), ctx.paths.accel_cache(), accel_why);
  why += "qemu: " + accel_why;
  return std::unique_ptr<vmm::Backend>(new vmm::qemu::QemuBackend(options));
}

}  // namespace fcvm::vm
