#include "fcvm/vmm/registry.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <set>

#include "fcvm/util/log.hpp"
#include "fcvm/vmm/firecracker/backend.hpp"
#include "fcvm/vmm/qemu/backend.hpp"

namespace fcvm::vmm {

const std::vector<BackendTraits>& registered_backends() {
  static const std::vector<BackendTraits> k_backends = {
      {VmmKind::kFirecracker,
       "firecracker",
       KernelKind::kUncompressed,
       DiskFormat::kRaw,
       "root.ext4",
       {"firecracker.sock", "vsock.sock"},
       {"disk.ext4", false, false}},
      {VmmKind::kQemu,
       "qemu",
       KernelKind::kCompressed,
       DiskFormat::kQcow2,
       "root.qcow2",
       {"qmp.sock", "agent.sock", "memory.ram"},
       {"disk.qcow2", true, true}},
  };
  return k_backends;
}

Result<const BackendTraits*> backend_traits(std::string_view name) {
  std::string known;
  for (const auto& b : registered_backends()) {
    if (b.name == name) return &b;
    known += (known.empty() ? "" : ", ") + std::string(b.name);
  }
  return fail(ErrorCode::kInvalidInput, fmt::format("unknown VMM \"{}\" (known: {})", name, known));
}

const BackendTraits& backend_traits(VmmKind kind) {
  for (const auto& b : registered_backends()) {
    if (b.kind == kind) return b;
  }
  return registered_backends().front();  // unreachable: every kind is registered
}

std::vector<std::string> all_runtime_files() {
  std::set<std::string> files;
  for (const auto& b : registered_backends())
    files.insert(b.runtime_files.begin(), b.runtime_files.end());
  return {files.begin(), files.end()};
}

void remove_leftovers(const std::string& vm_dir, const std::string& vm_id) {
  for (const auto& f : all_runtime_files()) ::unlink((vm_dir + "/" + f).c_str());
  if (auto r = firecracker::remove_jail(vm_dir, vm_id); !r) {
    FCVM_LOG(kWarn, "vmm", "{}", r.error().to_string());
  }
}

std::unique_ptr<Backend> make_backend(VmmKind kind, const BackendConfig& config) {
  switch (kind) {
    case VmmKind::kFirecracker: {
      firecracker::FirecrackerOptions options;
      options.firecracker_bin = config.firecracker_bin;
      if (config.jail) {
        firecracker::JailerOptions jail;
        jail.jailer_bin = config.jailer_bin;
        jail.uid = config.jail_uid;
        jail.gid = config.jail_gid;
        jail.chroot_base_dir.clear();  // in the VM's directory
        options.jailer = jail;
      }
      return std::make_unique<firecracker::FirecrackerBackend>(options);
    }
    case VmmKind::kQemu: {
      qemu::QemuOptions options;
      options.accel = config.kvm ? qemu::Accel::kKvm : qemu::Accel::kTcg;
      return std::make_unique<qemu::QemuBackend>(options);
    }
  }
  return nullptr;
}

}  // namespace fcvm::vmm
