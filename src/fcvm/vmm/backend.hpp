#pragma once
// The VMM backend interface. A Backend owns one VMM process for one VM: it spawns it inside the
// VM's network namespace, configures and boots the guest, hands out the byte stream to the guest
// agent, and stops it. Backends know nothing about images, state or the CLI (vm:: composes them).
//
// Lifecycle: start() -> connect_agent() (any number of times) -> shutdown()/wait_exit().
// The destructor kills the VMM if it still runs (ChildProcess semantics).
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fcvm/util/child_process.hpp"
#include "fcvm/util/result.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::vmm {

enum class DiskFormat { kRaw, kQcow2 };

struct DiskSpec {
  std::string path;
  DiskFormat format = DiskFormat::kRaw;
  bool read_only = false;
  std::string serial;  // the guest finds disks by this serial (/sys/block/vd*/serial)
  bool root = false;   // the root device
};

struct NetSpec {
  std::string tap;  // tap device name inside the VM's network namespace
  std::string mac;  // guest MAC, e.g. 06:00:0a:00:02:0f
};

struct VmSpec {
  std::string id;
  std::string name;
  std::string dir;  // the VM's runtime directory: sockets, logs, disks live here
  std::string kernel;
  std::string initrd;
  std::vector<std::string> kernel_args{};  // appended to the backend's own arguments
  int vcpus = 1;
  int mem_mib = 512;
  std::vector<DiskSpec> disks{};
  std::optional<NetSpec> net{};
  std::string console_log;  // file that receives the guest's serial console
  std::string vmm_log;      // file that receives the VMM's own stdout/stderr
  // Spawn the VMM inside the user (if any) and network namespaces of this process (0: ours).
  pid_t netns_holder = 0;
  // Firecracker only: MMDS content (the run plan), as JSON text.
  std::string mmds_json{};
  // QEMU: guest RAM lives in a file so that a snapshot needs only the device state beside a copy
  // of it. Empty: DIR/memory.ram. Mapped shared, the file is the RAM: the backend unlinks it as
  // soon as QEMU runs (holding a descriptor for snapshots), so it never outlives the VM; put it on
  // a tmpfs (/dev/shm), since guest RAM in a disk-backed file slows the guest with writeback.
  // A VM restored from a snapshot maps the snapshot's memory file privately instead (copy on
  // write: clones of one snapshot share its clean pages and never change the file).
  std::string memory_file{};
  bool memory_private = false;
  // Extra byte channels to the guest, by name (QEMU: virtio-serial ports the guest finds under
  // /sys/class/virtio-ports/*/name, each backed by a Unix socket in DIR). Used for volumes served
  // from the host (sshfs). Firecracker has no virtio-serial: it refuses them.
  std::vector<std::string> serial_ports{};
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string_view name() const = 0;
  // The disk format this backend wants for the per-VM writable root disk.
  virtual DiskFormat root_disk_format() const = 0;
  // Kernel file this backend boots (bzImage for QEMU, uncompressed vmlinux for Firecracker).
  virtual bool wants_uncompressed_kernel() const = 0;

  // Spawns the VMM and boots the guest. On failure nothing it created survives.
  virtual Result<> start(const VmSpec& spec) = 0;
  // A connected byte stream to fc-agent (retries until the timeout passes).
  virtual Result<UniqueFd> connect_agent(std::chrono::milliseconds timeout) = 0;
  // A connected byte stream to the extra port `name` of VmSpec::serial_ports.
  virtual Result<UniqueFd> connect_serial_port(const std::string& name,
                                               std::chrono::milliseconds timeout) {
    (void)name;
    (void)timeout;
    return fail(ErrorCode::kUnavailable,
                std::string(this->name()) + ": extra serial ports are not supported");
  }
  virtual Result<> pause() = 0;
  virtual Result<> resume() = 0;
  // Asks the VMM to end now (QMP quit, Firecracker SendCtrlAltDel then kill).
  virtual Result<> shutdown() = 0;
  // Waits for the VMM process to exit; nullopt on timeout.
  virtual Result<std::optional<ExitStatus>> wait_exit(std::chrono::milliseconds timeout) = 0;
  // SIGKILL the VMM and reap it.
  virtual void kill() = 0;
  virtual pid_t pid() const = 0;
  // Releases ownership of the VMM process (it keeps running).
  virtual pid_t detach() = 0;
  // The user the VMM runs as when it is not the caller's (a jailed Firecracker): the devices it
  // opens (the tap) must be that user's. Known before start().
  virtual std::optional<std::pair<uid_t, gid_t>> vmm_user() const { return std::nullopt; }
  // The running VMM's version ("v1.14.2"), when it says; "" otherwise.
  virtual std::string version() const { return {}; }
  // One line per vCPU saying where it is (instruction pointer, privilege level, halted or not),
  // for the log of a guest that hung; empty when the VMM cannot tell.
  virtual std::vector<std::string> vcpu_report() { return {}; }

  // Snapshots (clones). snapshot_create pauses the guest and writes its memory to mem_path and the
  // VM state to state_path; the guest stays paused (resume() or shutdown() next). disk_paths (in
  // the order of VmSpec::disks; empty: unchanged) are the files the snapshot should name for its
  // disks: the caller has copied the disks there while the guest was paused, and a backend whose
  // state file records disk paths (Firecracker) records these, so that clones never depend on
  // the source VM's files.
  // snapshot_load starts a fresh VMM for spec (as start() does) and restores those files instead
  // of booting; the guest runs at once when resume is true. Default: kUnavailable.
  virtual Result<> snapshot_create(const std::string& mem_path, const std::string& state_path,
                                   const std::vector<std::string>& disk_paths = {}) {
    (void)mem_path;
    (void)state_path;
    (void)disk_paths;
    return fail(ErrorCode::kUnavailable, std::string(name()) + ": snapshots are not supported");
  }
  virtual Result<> snapshot_load(const VmSpec& spec, const std::string& mem_path,
                                 const std::string& state_path, bool resume) {
    (void)spec;
    (void)mem_path;
    (void)state_path;
    (void)resume;
    return fail(ErrorCode::kUnavailable, std::string(name()) + ": snapshots are not supported");
  }

  // The serial under which the guest sees `disk` in /sys/block/vd*/serial. QEMU passes
  // DiskSpec::serial through (the default); Firecracker cannot set serials and derives one from
  // the backing file, so kernel arguments and plans must use this value, not disk.serial.
  virtual Result<std::string> guest_disk_serial(const DiskSpec& disk) const { return disk.serial; }
};

}  // namespace fcvm::vmm
