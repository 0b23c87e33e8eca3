#include "fcvm/vm/backend_select.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include "fcvm/util/child_process.hpp"
#include "fcvm/vmm/firecracker/probe.hpp"
#include "fcvm/vmm/qemu/backend.hpp"
#include "fcvm/vmm/registry.hpp"

namespace fcvm::vm {
namespace {

// Firecracker needs a KVM that really boots a guest. The proof is the same boot probe the QEMU
// backend uses (cached per boot); without QEMU on the host, KVM_CREATE_VM has to do.
Result<vmm::firecracker::ProbeResult> probe_firecracker(const Context& ctx) {
  vmm::firecracker::ProbeOptions options;
  options.firecracker_bin = ctx.firecracker_bin;
  if (find_executable("qemu-system-x86_64")) {
    options.boot_probe = [&ctx]() -> Result<> {
      std::string why;
      if (vmm::qemu::choose_accel(ctx.paths.kernel(), ctx.paths.accel_cache(), ctx.accel, why) ==
          vmm::qemu::Accel::kKvm) {
        return {};
      }
      return fail(ErrorCode::kUnavailable, why);  // the probe says "KVM cannot boot a guest here"
    };
  }
  return vmm::firecracker::firecracker_available(options);
}

}  // namespace

Result<std::unique_ptr<vmm::Backend>> select_backend(const Context& ctx, VmmChoice choice,
                                                     std::string& why, const std::string& jailer) {
  if (!choice || *choice == vmm::VmmKind::kFirecracker) {
    auto fc = probe_firecracker(ctx);
    if (fc) {
      why = fmt::format("firecracker: {} ({})", fc->version, fc->firecracker_bin);
      vmm::BackendConfig config;
      config.firecracker_bin = fc->firecracker_bin;
      config.jail =
          jailer == "on" || (jailer == "auto" && ::geteuid() == 0 && !ctx.jailer_bin.empty());
      if (config.jail) {
        if (ctx.jailer_bin.empty()) {
          return fail(ErrorCode::kUnavailable,
                      "--jailer: no jailer binary (set FCVM_JAILER_BIN, put `jailer` in PATH, or "
                      "install it with scripts/fcvm-init.sh)");
        }
        config.jailer_bin = ctx.jailer_bin;
        config.jail_uid = config.jail_gid = k_jail_id_base + static_cast<uint32_t>(::getpid());
        why += fmt::format(", jailed by {} as {}:{}", ctx.jailer_bin, config.jail_uid,
                           config.jail_gid);
      }
      return vmm::make_backend(vmm::VmmKind::kFirecracker, config);
    }
    if (choice) {
      const char* hint = ctx.firecracker_bin.empty() && fc.error().code() == ErrorCode::kUnavailable
                             ? " (FCVM_FIRECRACKER_BIN names a binary outside PATH)"
                             : "";
      return fail(ErrorCode::kUnavailable, fmt::format("--vmm firecracker: not available: {}{}",
                                                       fc.error().message(), hint));
    }
    why = fmt::format("firecracker not available ({}); ", fc.error().message());
  }
  if (!find_executable("qemu-system-x86_64")) {
    return fail(ErrorCode::kUnavailable,
                "qemu-system-x86_64 not found: install it with scripts/install-deps.sh run");
  }
  std::string accel_why;
  vmm::BackendConfig config;
  config.kvm = vmm::qemu::choose_accel(ctx.paths.kernel(), ctx.paths.accel_cache(), ctx.accel,
                                       accel_why) == vmm::qemu::Accel::kKvm;
  why += "qemu: " + accel_why;
  return vmm::make_backend(vmm::VmmKind::kQemu, config);
}

}  // namespace fcvm::vm
