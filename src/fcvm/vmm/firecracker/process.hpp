#pragma once
// Starting the Firecracker process, directly or through the jailer.
//
//   firecracker --api-sock <dir>/firecracker.sock --id <id>
//   jailer --id <id> --exec-file <firecracker> --uid U --gid G [--chroot-base-dir B]
//          [--parent-cgroup P] [--cgroup-version V] [--cgroup k=v]... [--resource-limit k=v]...
//          [--netns PATH] -- --api-sock /firecracker.socket
//
// The jailer passes --id to Firecracker itself and chroots it into
// <B>/<basename of exec-file>/<id>/root (JailLayout), so every path given to the API must be
// inside that root; JailLayout::expose() hard-links host files there. Without --daemonize and
// --new-pid-ns the jailer execs Firecracker in place. The new PID namespace is fcvm's own
// (JailerOptions::new_pid_ns): its init is a process of ours that stays root and dies with its
// parent, taking the namespace (and Firecracker) with it. The jailer's --new-pid-ns would leave
// Firecracker orphaned instead: its parent exits, and a process that drops root loses its
// parent-death signal.
//
// A jailed Firecracker's sockets are reached through symlinks in the VM's directory: the jail's
// own paths are too long for a socket address (108 bytes), a symlink to them is not.
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/util/child_process.hpp"
#include "fcvm/util/result.hpp"
#include "fcvm/vmm/firecracker/version.hpp"

namespace fcvm::vmm::firecracker {

// Where the jailed Firecracker puts its API socket (relative to the jail root).
// In the jail root, which the jailer chowns to the jail user (no /run needed there).
inline constexpr const char* k_jailed_api_sock = "/firecracker.socket";

struct JailerOptions {
  std::string jailer_bin{};  // empty: "jailer" from PATH
  uid_t uid = 0;
  gid_t gid = 0;
  std::string chroot_base_dir = "/srv/jailer";
  std::string parent_cgroup{};
  int cgroup_version = 0;                      // 0: jailer default (1)
  std::vector<std::string> cgroups{};          // "cpu.max=50000 100000", one --cgroup each
  std::vector<std::string> resource_limits{};  // "no-file=1024", one --resource-limit each
  std::string netns{};                         // path of a netns handle (/var/run/netns/x)
  bool new_pid_ns = false;                     // in a new PID namespace (see above)
};

struct ProcessOptions {
  std::string firecracker_bin;  // resolved path (resolve_firecracker_bin)
  std::string id;               // Firecracker instance id (letters, digits, '-')
  // Host path of the API socket; jailed, a symlink there to the socket in the jail.
  std::string api_sock;
  std::optional<JailerOptions> jailer{};
  std::string log_path{};  // receives stdout+stderr; empty: /dev/null
  pid_t join_namespaces_of = 0;
  std::chrono::milliseconds ready_timeout{5000};
  // Working directory of an unjailed Firecracker: relative paths it is given (the vsock socket)
  // resolve there, also when a snapshot taken elsewhere is loaded.
  std::string cwd{};
};

// The Firecracker binary: `explicit_path` if given (the caller's configuration), else
// "firecracker" from PATH. kUnavailable with a hint when none is found.
Result<std::string> resolve_firecracker_bin(const std::string& explicit_path = {});
Result<std::string> resolve_jailer_bin(const std::string& explicit_path = {});

std::vector<std::string> firecracker_argv(const std::string& bin, const std::string& api_sock,
                                          const std::string& id);
// jailer_bin is the resolved jailer path; options.jailer must be set.
std::vector<std::string> jailer_argv(const std::string& jailer_bin, const ProcessOptions& options);

// The jail's directory layout for one VM.
class JailLayout {
 public:
  JailLayout(const JailerOptions& jailer, const std::string& firecracker_bin,
             const std::string& id);
  // <chroot_base>/<exec name>/<id>: what to remove after the VM is gone.
  const std::string& instance_dir() const { return m_instance_dir; }
  // <instance_dir>/root: "/" as the jailed Firecracker sees it.
  const std::string& root() const { return m_root; }
  // Host path of a path as the jailed process sees it ("/x" -> <root>/x).
  std::string host_path(const std::string& jailed_path) const;
  // Hard-links host_file into the jail root under `name` (default: its base name; a link of
  // another file there is replaced) and answers the path the jailed Firecracker uses for it
  // ("/<name>"). A file Firecracker writes becomes the jail user's; a
  // read-only one keeps its owner (it may be shared: a base image, a snapshot's memory) and is
  // made readable to others (the jail is inside fcvm's own 0700 data directory: only the jailed
  // process, chrooted to this root, reaches it). Across filesystems a read-only file is copied.
  // copy_ok: a read-only file may be copied where it cannot be linked (not a disk: its serial is
  // its inode's).
  Result<std::string> expose(const std::string& host_file, bool writable = true,
                             bool copy_ok = false, const std::string& name = {}) const;

 private:
  std::string m_instance_dir;
  std::string m_root;
  uid_t m_uid;
  gid_t m_gid;
};

// Where fcvm puts a VM's jail, and the jailer's cgroup (v2) for it.
inline constexpr const char* k_jail_dir_name = "jail";  // in the VM's directory
inline constexpr const char* k_jail_parent_cgroup = "fcvm";
inline constexpr const char* k_cgroup_root = "/sys/fs/cgroup";
std::string jail_cgroup(const std::string& id);  // /sys/fs/cgroup/fcvm/<id>
// Removes what a jailed Firecracker of VM `id` leaves once it has ended: the jail in vm_dir and
// its cgroup (whose last process may still be exiting: retried for up to 2 s). Nothing there is
// fine.
Result<> remove_jail(const std::string& vm_dir, const std::string& id);

// A spawned Firecracker with the host path of its API socket.
struct SpawnedVmm {
  ChildProcess process;  // Firecracker, or the init of its PID namespace
  std::string api_sock;  // host path
  std::optional<JailLayout> jail{};
  Version version{};  // from GET /
};

// Spawns Firecracker (or the jailer) and waits, bounded by ready_timeout, until the API socket
// answers GET /, whose vmm_version must be one fcvm supports (kUnavailable otherwise). A process
// that exits before is reported with the tail of its log. A stale socket file at the API path is
// removed first (Firecracker refuses to bind over one).
Result<SpawnedVmm> spawn_firecracker(const ProcessOptions& options);

// The last `max_bytes` of a log file, trimmed, for error messages ("" when unreadable).
std::string log_tail(const std::string& path, size_t max_bytes = 600);

}  // namespace fcvm::vmm::firecracker
