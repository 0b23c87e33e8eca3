#include "fcvm/vmm/firecracker/probe.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

#include "fcvm/util/child_process.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unique_fd.hpp"
#include "fcvm/vmm/firecracker/process.hpp"
#include "fcvm/vmm/firecracker/version.hpp"

namespace fcvm::vmm::firecracker {
namespace {

tl::unexpected<Error> unavailable(std::string why, int sys_errno = 0) {
  return fail(ErrorCode::kUnavailable, "firecracker is not usable here: " + std::move(why),
              sys_errno);
}

Result<> check_kvm(const std::string& device) {
  if (::access(device.c_str(), F_OK) != 0) {
    return unavailable(fmt::format("{} is missing (KVM is not available on this host)", device),
                       errno);
  }
  UniqueFd kvm(::open(device.c_str(), O_RDWR | O_CLOEXEC));
  if (!kvm) {
    int e = errno;
    auto hint = e == EACCES ? " (add the user to the group owning it, usually kvm)" : "";
    return unavailable(fmt::format("cannot open {}{}", device, hint), e);
  }
  // KVM_GET_API_VERSION takes no argument and answers the version (12 since Linux 2.6.22).
  int version = ::ioctl(kvm.get(), KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    return unavailable(fmt::format("{} answers KVM API version {}, expected {}", device, version,
                                   KVM_API_VERSION));
  }
  // KVM_CREATE_VM with machine type 0 answers a new VM descriptor, owned by `vm` below.
  UniqueFd vm(::ioctl(kvm.get(), KVM_CREATE_VM, 0));
  if (!vm) return unavailable(fmt::format("{} cannot create a VM (KVM_CREATE_VM)", device), errno);
  return {};
}

}  // namespace

Result<ProbeResult> firecracker_available(const ProbeOptions& options) {
  ProbeResult result;
  auto bin = resolve_firecracker_bin(options.firecracker_bin);
  if (!bin) return unavailable(bin.error().to_string());
  result.firecracker_bin = *bin;

  if (options.check_version) {
    auto out = run_capture({*bin, "--version"}, options.version_timeout);
    if (!out) return unavailable(fmt::format("{} --version: {}", *bin, out.error().to_string()));
    if (!out->status.exited || out->status.code != 0) {
      return unavailable(fmt::format("{} --version failed ({}): {}", *bin, out->status.describe(),
                                     trim(out->err + out->out)));
    }
    auto lines = split(trim(out->out), '\n');
    result.version = lines.empty() ? "" : std::string(trim(lines.front()));
    auto version = parse_version(result.version);
    if (!version) {
      return unavailable(fmt::format("{} --version: {}", *bin, version.error().message()));
    }
    if (auto supported = check_supported(*version); !supported) {
      return unavailable(fmt::format("{}: {}", *bin, supported.error().message()));
    }
  }

  FCVM_TRY(check_kvm(options.kvm_device));

  if (options.boot_probe) {
    auto booted = options.boot_probe();
    if (!booted) return unavailable("KVM cannot boot a guest here: " + booted.error().to_string());
  }
  return result;
}

}  // namespace fcvm::vmm::firecracker
