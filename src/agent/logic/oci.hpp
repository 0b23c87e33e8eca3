#pragma once
// Pure functions behind a container that runs from a stored image: the OCI runtime spec the
// agent hands to crun (config.json of the bundle, the process of an exec), the user an image or
// exec names resolved against the container's own /etc/passwd and /etc/group, the environment as
// podman builds it, and crun's argv. The agent's runtime code writes and spawns what these return.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::agent {

// The container's state lives here (crun --root), bundle and pid files beside it.
inline constexpr const char* k_crun_root = "/run/fcvm-agent/crun";
inline constexpr const char* k_bundle_dir = "/run/fcvm-agent/bundle";
// crun writes the container's pid here once the process runs (after the start barrier): the
// agent's "container started".
inline constexpr const char* k_main_pid_name = "main.pid";

// fcvm cp: the guest's static busybox, run in the container's mount namespace for its tar.
inline constexpr const char* k_guest_busybox = "/bin/busybox";
// --init: the guest's catatonit, bind-mounted here in the container and run as its PID 1.
inline constexpr const char* k_guest_init = "/usr/bin/catatonit";
inline constexpr const char* k_init_path = "/run/fcvm-init";

struct ContainerUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids{};
  std::string home = "/";
};

// USER as an image config or `exec --user` gives it ("", NAME, UID, NAME:GROUP, UID:GID, ...),
// resolved as podman does against the container's /etc/passwd and /etc/group texts (either may
// be empty: a numeric user still resolves). "" is root. A numeric uid without an entry gets its
// uid as gid and home "/"; a name gets its entry's gid, home and every group that lists it.
Result<ContainerUser> resolve_user(std::string_view spec, std::string_view passwd,
                                   std::string_view group);

// The USER the container runs as: the plan's (--user) over the image's.
std::string container_user_spec(const agent_proto::Plan& plan);
// The container's command: the plan's entrypoint over the image's, the plan's command over the
// image's CMD (a given entrypoint drops the image's CMD), as podman applies them.
std::vector<std::string> container_args(const agent_proto::Plan& plan);
// The working directory: the plan's over the image's, "/" when neither names one.
std::string container_cwd(const agent_proto::Plan& plan);

// The container's environment as podman builds it: TERM=xterm, PATH (podman's default when the
// image has none), the image's env, HOME from the user's entry, HOSTNAME, then the plan's env;
// a later value of a name replaces an earlier one in place.
std::vector<std::string> container_env(const agent_proto::Plan& plan, const ContainerUser& user);
// Entries of `overrides` replace those of `base` with the same name; new names are appended.
std::vector<std::string> merge_env(std::vector<std::string> base,
                                   const std::vector<std::string>& overrides);

struct SpecFiles {
  std::string hosts;        // bind-mounted at /etc/hosts
  std::string resolv_conf;  // at /etc/resolv.conf
  std::string hostname;     // at /etc/hostname
};

// config.json for `crun run`: the rootfs (an absolute path), podman's defaults for a container
// on the host network (pid, ipc, uts, mount and cgroup namespaces; podman's capabilities,
// rlimits, masked and read-only paths; /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys and
// /sys/fs/cgroup), the guest's name files and each volume bind-mounted from its guest directory.
// No seccomp filter: the VM is the isolation boundary (DESIGN.md).
// The container process's rlimits (OCI): podman's defaults (nofile and nproc), each replaced by a
// plan's limit of the same resource; -1 is RLIM_INFINITY.
nlohmann::json rlimits(const std::vector<agent_proto::Ulimit>& ulimits);
nlohmann::json container_spec(const agent_proto::Plan& plan, const std::string& rootfs,
                              const ContainerUser& user, const std::vector<std::string>& env,
                              const SpecFiles& files);

// The process of `crun exec --process FILE`: the container's environment under the exec's, the
// exec's workdir (else the container's), the resolved user and podman's capabilities. A tty exec
// gets a terminal of the container's own (crun, in the foreground, relays it to its stdio, puts
// that in raw mode and passes window size changes on at SIGWINCH).
nlohmann::json exec_process(const agent_proto::Exec& exec, const ContainerUser& user,
                            const std::vector<std::string>& container_env,
                            const std::string& container_cwd);

std::vector<std::string> crun_run_argv(const std::string& root, const std::string& bundle,
                                       const std::string& pid_file);
std::vector<std::string> crun_exec_argv(const std::string& root, const std::string& process_file,
                                        const std::string& pid_file);
// The exit code of an exec whose process never started, from crun's message, as podman maps
// its runtime's errors: 127 the executable was not found, 126 it cannot be run, else 125.
int crun_exec_failure_code(std::string_view message);

std::vector<std::string> crun_delete_argv(const std::string& root);

}  // namespace fcvm::agent
