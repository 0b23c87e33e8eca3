#pragma once
// Can Firecracker run here? Checks, in order, each failing with a reason a user can act on:
//   1. the binary (configured, else from PATH) exists and answers --version;
//   2. /dev/kvm exists and can be opened read-write;
//   3. KVM answers the stable API version and creates a VM (KVM_CREATE_VM);
//   4. optionally, the caller's boot probe (a tiny guest booted with a short timeout): a device
//      node that opens is not proof that a guest boots (nested or emulated KVM may not).
// Cheap and side-effect free: `--vmm firecracker` calls it before creating anything.
#include <chrono>
#include <functional>
#include <string>

#include "fcvm/util/result.hpp"

namespace fcvm::vmm::firecracker {

struct ProbeOptions {
  std::string firecracker_bin{};  // empty: "firecracker" from PATH
  std::string kvm_device = "/dev/kvm";
  bool check_version = true;  // run `firecracker --version`
  std::chrono::milliseconds version_timeout{5000};
  // Step 4; not run when empty.
  std::function<Result<>()> boot_probe{};
};

struct ProbeResult {
  std::string firecracker_bin;
  std::string version;  // first line of --version, e.g. "Firecracker v1.16.1"
};

// kUnavailable with the reason when Firecracker cannot run here.
Result<ProbeResult> firecracker_available(const ProbeOptions& options = {});

}  // namespace fcvm::vmm::firecracker
