#pragma once
// Pure functions around podman: the exact argv the agent runs for a Plan or an Exec, and parsers
// of what podman prints or sends. The agent's runtime code only spawns what these return.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::agent {

// The VM's one main container.
inline constexpr const char* k_container_name = "fcvm-main";
// Where block volumes are mounted in the guest (N: the volume's index in the plan).
inline constexpr const char* k_volume_root = "/run/fcvm/volumes";
std::string volume_mount_dir(size_t index);
// A stored image: its disk is mounted read-only at k_image_root, the lower layer of an overlay
// at k_rootfs whose upper layer is on the VM's own disk (k_rootfs_layer/{upper,work}): writes
// survive stop/start and go into snapshots, as a container's do.
inline constexpr const char* k_image_root = "/run/fcvm/image";
inline constexpr const char* k_rootfs = "/run/fcvm/rootfs";
inline constexpr const char* k_rootfs_layer = "/var/lib/fcvm/rootfs";

// podman run --name fcvm-main --replace --network host --sdnotify=conmon --pull=never
//   [--entrypoint JSON] [-e K=V]... [--user U] [--read-only] [-i] [-t] [--init] [-w DIR]
//   IMAGE [COMMAND...]
// (On the host network podman gives the container the guest's host name, which is the plan's.)
// The image is already in local storage when this runs (--pull=never keeps a failure local).
// A stored image (plan.image.rootfs_serial) runs under crun instead (oci.hpp).
std::vector<std::string> podman_run_argv(const agent_proto::Plan& plan, const std::string& image);

// podman exec -i [-t] [-e K=V]... [-w DIR] [-u USER] fcvm-main ARGV...
std::vector<std::string> podman_exec_argv(const agent_proto::Exec& exec);

// The argv of an exec that runs in the guest OS (in_vm): ARGV itself, or wrapped in
// `setpriv --reuid=UID --regid=GID --clear-groups --` when a numeric UID[:GID] user is given.
// A user name is refused (the static agent cannot resolve names without NSS).
Result<std::vector<std::string>> in_vm_argv(const agent_proto::Exec& exec);

std::vector<std::string> podman_load_argv(const std::string& path);
std::vector<std::string> podman_stop_argv(int timeout_s);
std::vector<std::string> podman_kill_argv(int sig);
std::vector<std::string> podman_running_argv();  // prints "true" while the container runs

// The image `podman load` reported: "Loaded image: NAME" (podman 4) or "Loaded image(s): A,B"
// (older); the first name. An unnamed archive is reported by ID ("sha256:HEX" or HEX): the
// result is then the bare hex ID, which podman run accepts.
std::optional<std::string> parse_loaded_image(std::string_view output);

// True when an sd_notify datagram ("K=V" lines) contains READY=1.
bool notify_says_ready(std::string_view datagram);

// The last max_bytes of text, cut at a line start when possible (for error messages).
std::string tail_lines(std::string_view text, size_t max_bytes);

}  // namespace fcvm::agent
