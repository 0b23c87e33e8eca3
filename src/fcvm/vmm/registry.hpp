#pragma once
// The VMMs fcvm drives, and everything vm/ needs to know about each without naming it: the kernel
// it boots, the root disk it wants, the files it leaves in a VM's directory and the layout of its
// snapshots. Adding a VMM is a folder under vmm/ plus one entry in registry.cpp.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fcvm/vmm/backend.hpp"

namespace fcvm::vmm {

enum class VmmKind { kQemu, kFirecracker };
enum class KernelKind { kCompressed, kUncompressed };  // bzImage | ELF vmlinux

struct SnapshotLayout {
  std::string disk_file;         // the root disk's copy in a snapshot directory
  bool copies_kernel = false;    // the VMM reloads kernel and initrd on restore: keep copies
  bool memory_writable = false;  // the VMM opens the memory file read-write on restore
};

struct BackendTraits {
  VmmKind kind = VmmKind::kQemu;
  std::string_view name;
  KernelKind kernel = KernelKind::kCompressed;
  DiskFormat root_disk_format = DiskFormat::kQcow2;
  std::string root_disk_file;                // the VM's own writable root disk in its directory
  std::vector<std::string> runtime_files{};  // sockets and files removed when the VM ends
  SnapshotLayout snapshot{};
};

// Every registered VMM, in the order `--vmm auto` prefers them (Firecracker first).
const std::vector<BackendTraits>& registered_backends();
// By name ("qemu", "firecracker"); kInvalidInput names the value and the known names.
Result<const BackendTraits*> backend_traits(std::string_view name);
const BackendTraits& backend_traits(VmmKind kind);
// The runtime files of every VMM (reconcile cleans a directory whose VMM died with its monitor).
std::vector<std::string> all_runtime_files();

// What a backend needs from its caller, explicitly.
struct BackendConfig {
  bool kvm = false;  // QEMU: KVM instead of TCG (decided by the caller's probe)
  std::string firecracker_bin{};
  // Firecracker through the jailer (jailer_bin) as jail_uid:jail_gid; see FirecrackerBackend.
  bool jail = false;
  std::string jailer_bin{};
  uid_t jail_uid = 0;
  gid_t jail_gid = 0;
};
// What the VMMs leave in a VM's directory (and elsewhere, for that VM) when they are killed
// together with their monitor: runtime files, a Firecracker jail and its cgroup.
void remove_leftovers(const std::string& vm_dir, const std::string& vm_id);
std::unique_ptr<Backend> make_backend(VmmKind kind, const BackendConfig& config);

}  // namespace fcvm::vmm
