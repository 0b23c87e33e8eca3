#pragma once
// What the user asked `fcvm run` for, validated (cli:: parses and validates; vm:: executes).
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/net/publish.hpp"
#include "fcvm/storage/image_ref.hpp"
#include "fcvm/storage/volume.hpp"
#include "fcvm/util/result.hpp"
#include "fcvm/vm/restart.hpp"
#include "fcvm/vmm/registry.hpp"

namespace fcvm::vm {

enum class NetworkMode { kRootless, kPrivileged };
std::string_view to_string(NetworkMode mode);
// "rootless" | "privileged"; kInvalidInput names `what` and the value.
Result<NetworkMode> parse_network_mode(std::string_view text, std::string_view what = "--network");

// The VMM a VM asks for: a registered one, or none for auto (the best this host runs).
using VmmChoice = std::optional<vmm::VmmKind>;
std::string vmm_choice_name(VmmChoice choice);  // "auto" or the VMM's name
// "auto" or a registered VMM's name; kInvalidInput names `what`, the value and the known names.
Result<VmmChoice> parse_vmm_choice(std::string_view text, std::string_view what = "--vmm");

struct RunOptions {
  std::string name{};  // generated when empty
  storage::ImageRef image;
  std::vector<std::string> command{};  // replaces the image's CMD when non-empty
  std::vector<std::string> entrypoint{};
  std::vector<std::string> env{};  // "K=V"
  std::string workdir{};
  std::string user{};      // --user: replaces the image's USER (NAME|UID[:GROUP|GID])
  std::string hostname{};  // --hostname: the container's and the guest's (default: the name)
  bool read_only =
      false;          // --read-only: the container's root is read-only (tmpfs on /tmp, /run, ...)
  bool init = false;  // --init: catatonit as PID 1 reaps zombies and forwards signals
  std::vector<agent_proto::Ulimit> ulimits{};  // --ulimit: the container's resource limits
  bool interactive = false;                    // -i: the attached client's stdin is the container's
  bool tty = false;                            // -t: the container runs on a terminal
  std::map<std::string, std::string> labels{};  // --label K=V
  std::vector<net::PortMapping> ports{};
  std::vector<storage::VolumeMap> volumes{};  // --map
  int64_t map_size_mib = 0;                   // --map-size: block images of directories (0: auto)
  std::vector<std::string> insecure_registries{};
  // The image comes from the host image store (the default), or is pulled or loaded inside the
  // guest (--guest-pull). The stored image is resolved before the VM is created:
  bool guest_pull = false;
  std::string authfile{};           // registry credentials for the pull (not kept)
  std::string image_id{};           // sha256:HEX, the stored image
  std::string image_disk{};         // its read-only disk
  std::string image_config_json{};  // its OCI config (entrypoint, cmd, env, ...)
  int mem_mib = 1024;
  int vcpus = 2;
  VmmChoice vmm{};
  // Firecracker through its jailer: "auto" (when root and a jailer binary is found), "on"
  // (required) or "off".
  std::string jailer = "auto";
  NetworkMode network = NetworkMode::kRootless;
  int stop_timeout_s = 10;
  // How long a boot may take until the guest's agent answers (--boot-timeout).
  int boot_timeout_s = 180;
  int64_t ttl_s = 0;         // --timeout: the VM is stopped this long after its creation (0: never)
  RestartPolicy restart{};   // --restart (run -d): what the monitor does when the VM ends
  std::string wait_ready{};  // a readiness gate spec (readiness/gate.hpp); empty: container running
  bool keep_on_failure = false;  // keep the VM when its readiness gate fails
  std::string timings_file{};    // JSON lines of start-up milestones (benchmarks)
  // On the first start, once ready: write a snapshot with this name (then end the VM when
  // snapshot_then_stop).
  std::string save_snapshot{};
  bool snapshot_then_stop = false;
};

// --ulimit NAME=SOFT[:HARD] (podman's syntax; -1 is unlimited; HARD defaults to SOFT, and may
// not be below it); kInvalidInput names the text. ulimit_text is its canonical spelling.
Result<agent_proto::Ulimit> parse_ulimit(const std::string& text);
std::string ulimit_text(const agent_proto::Ulimit& u);

// A time-to-live in seconds: 0 (none) to 10 years. kInvalidInput names `what` and the text.
Result<int64_t> parse_ttl_seconds(const std::string& text, const std::string& what);

// Serialised into the VM's record so that `fcvm start` boots it again with the same options.
std::string options_to_json(const RunOptions& options);
// Re-validates what it reads (an archive may have gone since).
Result<RunOptions> options_from_json(const std::string& text);

// Validators shared by the CLI and tests. Each error is kInvalidInput and names the value.
Result<> validate_name(const std::string& name);

// A VM's published ports as its record keeps them ("127.0.0.1:8080:80/tcp,..."), for `fcvm port`.
struct PublishedPort {
  int guest_port = 0;
  std::string proto;  // tcp | udp
  std::string host_ip;
  int host_port = 0;
};
std::vector<PublishedPort> published_ports(const std::string& ports_column);
// "K=V" is kept; a bare "K" takes the value `lookup` finds (error when it finds none).
Result<std::string> normalize_env(
    const std::string& entry,
    const std::function<std::optional<std::string>(const std::string&)>& lookup);
// Parses an --env-file: K=V lines (a bare K as for normalize_env), '#' comments and blank lines
// ignored.
Result<std::vector<std::string>> read_env_file(
    const std::string& path,
    const std::function<std::optional<std::string>(const std::string&)>& lookup);
Result<> validate_registry(const std::string& host_port);

}  // namespace fcvm::vm
