#pragma once
// Every rule about what a VM may be asked for, in one place for every front end (CLI, shim, HTTP
// API): a request holds the values as the user gave them (text), validate_* turns it into
// options or one kInvalidInput error that names the bad value. Nothing is created here; the
// checks that touch the host (ports free, helpers installed) come last.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/image/store.hpp"
#include "fcvm/net/publish.hpp"
#include "fcvm/state/vm_store.hpp"
#include "fcvm/storage/volume.hpp"
#include "fcvm/vm/context.hpp"
#include "fcvm/vm/options.hpp"
#include "fcvm/vm/snapshot.hpp"

namespace fcvm::vm {

// Where a bare `-e NAME` takes its value from (the requesting client's environment, never the
// server's unless it is the client).
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_env();

// What `run` falls back to for what a request leaves out (the configuration file's defaults).
struct RunDefaults {
  int mem_mib = 1024;
  int vcpus = 2;
  int stop_timeout_s = 10;
  int boot_timeout_s = 180;
  std::string vmm = "auto";
  std::string jailer = "auto";
  std::string network = "rootless";
  std::vector<std::string> insecure_registries{};  // added to every request's
};

// `run` as asked for. Empty strings: not given.
struct RunRequest {
  std::string name{};
  std::vector<std::string> image_and_command{};  // IMAGE [COMMAND [ARG...]]
  std::vector<std::string> publish{};
  std::vector<std::string> env{};
  std::vector<std::string> env_files{};
  std::vector<std::string> insecure_registries{};
  bool guest_pull = false;
  std::string authfile{};
  std::string entrypoint{};
  std::string workdir{};
  std::string user{};
  std::string hostname{};
  bool read_only = false;
  bool init = false;
  std::vector<std::string> ulimits{};  // --ulimit NAME=SOFT[:HARD]
  bool interactive = false;
  bool tty = false;
  bool detach = false;                // -d (with -i/-t: for fcvm attach)
  std::vector<std::string> labels{};  // K=V (or K: an empty value)
  std::string mem{};
  std::string cpu{};
  std::string vmm{};
  std::string jailer{};  // --jailer: "on", --no-jailer: "off"
  std::string network{};
  std::string stop_timeout{};
  std::string boot_timeout{};
  std::string restart{};  // --restart POLICY (with -d)
  std::string ttl{};      // --timeout SECONDS: stopped that long after creation
  std::string timings_file{};
  std::string wait_ready{};
  std::string save_snapshot{};
  bool snapshot_then_stop = false;
  std::vector<std::string> maps{};
  std::string map_size{};
  bool keep_on_failure = false;
};

Result<RunOptions> validate_run(const RunRequest& request, const RunDefaults& defaults,
                                const EnvLookup& env);

// `pull` as asked for: the reference, the configuration file's insecure registries added to the
// given ones (each checked), a readable authfile. Also the parts of validate_run about fetching.
Result<image::PullRequest> validate_pull(const std::string& ref,
                                         const std::vector<std::string>& insecure_registries,
                                         const std::string& authfile, const RunDefaults& defaults);

// `clone` as asked for. Empty strings: not given (the snapshot's).
struct CloneRequest {
  std::string name{};
  std::vector<std::string> publish{};
  std::string network{};
  std::string wait_ready{};
  bool keep_on_failure = false;
  std::string timings_file{};
  std::vector<std::string> labels{};  // added to (or replacing) the snapshot's
  std::string ttl{};                  // --timeout SECONDS
};
Result<CloneOptions> validate_clone(const CloneRequest& request);

// --label K=V (or K) -> (K, V); K may not be empty or hold '=' or a control character.
Result<std::pair<std::string, std::string>> parse_label(const std::string& text);
// --hostname: an RFC 1123 host name of at most 63 characters.
Result<> validate_hostname(const std::string& hostname);
// --user: NAME or UID, optionally :GROUP or :GID (names as in /etc/passwd).
Result<> validate_user(const std::string& user);

// What needs the store or the host's VMMs, before anything is created: a snapshot name that is
// free, an explicitly chosen VMM that can run here.
Result<> check_run(Context& ctx, state::VmStore& store, const RunOptions& options);

// The pieces, for front ends that take one value at a time.
Result<std::vector<net::PortMapping>> parse_ports(const std::vector<std::string>& publish);
Result<NetworkMode> validate_network(const std::string& mode);
Result<> validate_gate(const std::string& spec);  // empty: no gate
// A --map mode this host and network mode can serve.
Result<> check_volume_mode(const storage::VolumeMap& map, NetworkMode network);
// The published ports are free for us, and not held by a privileged VM's DNAT rules either (they
// take a port without a socket).
Result<> check_ports_available(const std::vector<net::PortMapping>& ports);
// No snapshot (complete or being written) has this name.
Result<> check_snapshot_name_free(state::VmStore& store, const std::string& name);

}  // namespace fcvm::vm
