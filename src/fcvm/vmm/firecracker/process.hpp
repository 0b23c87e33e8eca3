#pragma once
// Starting the Firecracker process, directly or through the jailer.
//
//   firecracker --api-sock <dir>/firecracker.sock --id <id>
//   jailer --id <id> --exec-file <firecracker> --uid U --gid G [--chroot-base-dir B]
//          [--parent-cgroup P] [--cgroup-version V] [--cgroup k=v]... [--resource-limit k=v]...
//          [--netns PATH] [--new-pid-ns] -- --api-sock /firecracker.socket
//
// The jailer passes --id to Firecracker itself and chroots it into
// <B>/<basename of exec-file>/<id>/root (JailLayout), so every path given to the API must be
// inside that root; JailLayout::expose() hard-links host files there. Without --daemonize and
// --new-pid-ns the jailer execs Firecracker in place, so the pid we hold is Firecracker's;
// spawn_firecracker refuses --new-pid-ns (the process we would hold is not the VMM).
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
  bool new_pid_ns = false;
};

struct ProcessOptions {
  std::string firecracker_bin;  // resolved path (resolve_firecracker_bin)
  std::string id;               // Firecracker instance id (letters, digits, '-')
  std::string api_sock;         // host path of the API socket when not jailed
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
  // Hard-links host_file into the jail root under its base name, owned by the jail's uid/gid,
  // and answers the path the jailed Firecracker uses for it ("/<name>").
  Result<std::string> expose(const std::string& host_file) const;

 private:
  std::string m_instance_dir;
  std::string m_root;
  uid_t m_uid;
  gid_t m_gid;
};

// A spawned Firecracker with the host path of its API socket.
struct SpawnedVmm {
  ChildProcess process;
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
