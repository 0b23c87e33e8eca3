#pragma once
// Control messages of the agent protocol (payload of Kind::kControl frames): JSON objects with a
// "type" member. docs/agent-protocol.md is the normative description; keep both in sync.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/agent_proto/frame.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::agent_proto {

// A registry host rewritten for the guest: references to `prefix` are pulled from `location`
// (e.g. the host's 127.0.0.1:5000 is reached from the guest through the network gateway).
struct RegistryMirror {
  std::string prefix;
  std::string location;
  bool insecure = false;
};

// What a container takes from its image's config (OCI image config `config`).
struct RootfsConfig {
  std::vector<std::string> entrypoint{};
  std::vector<std::string> cmd{};
  std::vector<std::string> env{};  // K=V
  std::string workdir{};
  std::string user{};
  std::string stop_signal{};
};

struct ImageSpec {
  std::string ref;  // registry reference, or the name under which an archive is loaded
  // When set, the image is an archive on the virtio disk with this serial ("oci-archive" or
  // "docker-archive"), loaded instead of pulled.
  std::string archive_serial{};
  std::string archive_format{};
  // Size of the archive in bytes when known (0: unknown). The disk may be longer (zero padding
  // to a whole sector); the agent copies exactly this many bytes when it needs a regular file.
  int64_t archive_size = 0;
  std::vector<std::string> insecure_registries{};  // HOST[:PORT] reachable over plain HTTP
  std::vector<RegistryMirror> mirrors{};
  // A stored image: the read-only disk with this serial holds its root filesystem
  // (`rootfs_fstype`), which the container runs from under an overlay; nothing is loaded or pulled.
  // podman cannot read the image's config from there, so the plan carries it.
  std::string rootfs_serial{};
  std::string rootfs_fstype{};
  RootfsConfig config{};
};

struct NetworkSpec {
  std::string interface = "eth0";
  std::string address;  // CIDR, e.g. 10.0.2.15/24
  std::string gateway;
  std::vector<std::string> dns{};
  int mtu = 1500;
};

// A host volume the container sees at `guest_path`. Block volumes are a disk with `serial` that the
// agent mounts (ext4) and bind-mounts into the container.
struct VolumeSpec {
  std::string guest_path;
  std::string mode = "block";  // block | sshfs | nfs
  std::string serial{};        // block: the disk's serial; sshfs: the virtio-serial port's name
  bool read_only = false;
  std::string source{};   // nfs: SERVER:/PATH
  std::string options{};  // nfs: the kernel's mount options (addr=, port=, vers=, ...)
};

// A resource limit of the container's process (podman's --ulimit, an OCI spec's rlimits): `name`
// is the resource without "RLIMIT_", lower case ("nofile"); -1 is unlimited.
struct Ulimit {
  std::string name;
  int64_t soft = 0;
  int64_t hard = 0;
};
// "nofile", "nproc", ...: the resources a ulimit may name (RLIMIT_<NAME upper-cased>).
bool is_ulimit_name(std::string_view name);

struct Plan {
  uint32_t version = k_protocol_version;  // the host's protocol version (major)
  std::string vm_id;
  std::string name;
  std::string hostname;
  ImageSpec image;
  std::vector<std::string> command{};     // replaces the image's CMD when non-empty
  std::vector<std::string> entrypoint{};  // replaces the image's ENTRYPOINT when non-empty
  std::vector<std::string> env{};         // "K=V"
  std::string workdir{};
  std::string user{};      // replaces the image's USER when non-empty
  bool read_only = false;  // the container's root read-only (podman --read-only)
  bool init = false;       // an init (catatonit) as the container's PID 1 (podman --init)
  // run -i/-t: the container's stdin comes from the host on stream 0 (stdin frames); with tty
  // it runs on a terminal of rows x cols (resize on stream 0 changes it).
  bool stdin_open = false;
  bool tty = false;
  uint16_t rows = 0;
  uint16_t cols = 0;
  NetworkSpec network;
  std::vector<VolumeSpec> volumes{};
  std::vector<Ulimit> ulimits{};  // replace the container's default limits of the same name
  int64_t time_unix_ns = 0;       // host clock when the plan was sent; the guest sets its clock
  int stop_timeout_s = 10;
  // Hex-encoded random bytes the agent mixes into the guest's entropy pool, so that clones of one
  // snapshot stop sharing RNG state (sent again on every re-handshake). Empty: none.
  std::string rng_seed_hex{};
};

// Message type names.
inline constexpr const char* k_hello = "hello";  // guest -> host, first message
inline constexpr const char* k_plan = "plan";    // host -> guest, answer to hello
inline constexpr const char* k_event = "event";  // guest -> host, progress milestone
inline constexpr const char* k_ready = "ready";  // guest -> host, container running
inline constexpr const char* k_exit = "exit";    // guest -> host, a stream's process ended
inline constexpr const char* k_error = "error";  // guest -> host, plan failed (fatal)
inline constexpr const char* k_stop = "stop";    // host -> guest, stop the container
inline constexpr const char* k_log = "log";      // guest -> host, agent diagnostics
inline constexpr const char* k_exec = "exec";    // host -> guest, start a process on a stream
// Exec sessions, besides exec and exit.
// guest -> host: an exec did not start (its `exit` follows).
inline constexpr const char* k_exec_error = "exec_error";
// host -> guest: a tty exec's new window size.
inline constexpr const char* k_resize = "resize";
// host -> guest: a signal for an exec's process.
inline constexpr const char* k_signal = "signal";

// Agent states reported in hello (after a reconnect the host learns where the agent is).
inline constexpr const char* k_state_waiting_plan = "waiting_plan";
inline constexpr const char* k_state_preparing = "preparing";
inline constexpr const char* k_state_running = "running";
inline constexpr const char* k_state_stopping = "stopping";

struct Hello {
  uint32_t version = 0;
  std::string agent;      // e.g. "fc-agent 0.1.0"
  int64_t uptime_ms = 0;  // guest uptime when hello was sent
  std::string state{};    // k_state_*; empty from a host (host -> guest hello asks for a hello)
};
struct Event {
  std::string name;  // network_ready, image_ready, container_started, ...
  int64_t uptime_ms = 0;
  std::string detail{};
};
struct Exit {
  uint32_t stream = 0;
  int code = 0;  // exit code (128+N for a signal)
};
struct ErrorMsg {
  std::string stage;  // network, image, container, ...
  std::string message;
};
struct Stop {
  int timeout_s = 10;  // SIGTERM, then SIGKILL after timeout_s
};
// A process on its own stream: `podman exec` in the main container, or directly in the guest OS
// (in_vm). Its output comes back as stdout/stderr frames of `stream`, its status as `exit`.
struct Exec {
  uint32_t stream = 0;  // >= 1, chosen by the host, unique among running execs
  std::vector<std::string> argv{};
  std::vector<std::string> env{};  // "K=V"
  std::string workdir{};
  std::string user{};  // container: podman's --user; in_vm: UID[:GID]
  bool tty = false;
  bool in_vm = false;
  // Initial terminal size of a tty exec; 0: not given (the kernel's default, 0x0).
  uint16_t rows = 0;
  uint16_t cols = 0;
};
// Why an exec did not start (the container is not running, bad message, command not found).
// Sent just before the stream's `exit` (125, 126 or 127); nothing else arrives on that stream.
struct ExecError {
  uint32_t stream = 0;
  std::string message;
};
// The new window size of a tty exec's terminal (TIOCSWINSZ; the foreground process gets
// SIGWINCH).
struct Resize {
  uint32_t stream = 0;
  uint16_t rows = 0;
  uint16_t cols = 0;
};
// A signal for an exec's process. On the wire `signal` is a name without "SIG" ("TERM", "INT",
// "KILL", "HUP", ...) or a number; here a number is kept as its decimal text.
struct Signal {
  uint32_t stream = 0;
  std::string signal;
};

nlohmann::json to_json(const Plan& p);
Result<Plan> plan_from_json(const nlohmann::json& j);

std::string encode_hello(const Hello& h);
std::string encode_plan(const Plan& p);
std::string encode_event(const Event& e);
std::string encode_ready();
std::string encode_exit(const Exit& e);
std::string encode_error(const ErrorMsg& e);
std::string encode_stop(const Stop& s);
std::string encode_log(const std::string& message);
std::string encode_exec(const Exec& e);
Result<Exec> exec_from_json(const nlohmann::json& j);
std::string encode_exec_error(const ExecError& e);
Result<ExecError> exec_error_from_json(const nlohmann::json& j);
std::string encode_resize(const Resize& r);
Result<Resize> resize_from_json(const nlohmann::json& j);
std::string encode_signal(const Signal& s);
Result<Signal> signal_from_json(const nlohmann::json& j);
// Guest -> host messages the host decodes (kProtocol for a member of the wrong type).
Result<Exit> exit_from_json(const nlohmann::json& j);
Result<Event> event_from_json(const nlohmann::json& j);
Result<ErrorMsg> error_from_json(const nlohmann::json& j);
// The message of a `log` (empty when it has none).
Result<std::string> log_from_json(const nlohmann::json& j);
// Parses a hello (either direction).
Result<Hello> hello_from_json(const nlohmann::json& j);

// Parses a control payload; the result always has a string "type".
Result<nlohmann::json> parse_control(const std::string& payload);

}  // namespace fcvm::agent_proto
