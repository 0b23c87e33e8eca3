#pragma once
// One struct per Firecracker API resource fcvm uses. Field names and enum spellings follow
// Firecracker's OpenAPI spec exactly (tests validate every to_json() against it); optional fields
// are std::optional and left out of the JSON when unset, so Firecracker applies its own defaults.
// Each model also names the endpoint it is sent to (path()).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/util/result.hpp"

namespace fcvm::vmm::firecracker {

// PUT /logger
struct Logger {
  std::string log_path;
  std::optional<std::string> level{};  // Error, Warning, Info, Debug, Trace, Off
  std::optional<bool> show_level{};
  std::optional<bool> show_log_origin{};
  std::optional<std::string> module{};
  static std::string path() { return "/logger"; }
  nlohmann::json to_json() const;
};

// PUT /metrics
struct Metrics {
  std::string metrics_path;
  static std::string path() { return "/metrics"; }
  nlohmann::json to_json() const;
};

// PUT /machine-config (GET answers the same shape)
struct MachineConfiguration {
  int vcpu_count = 1;
  int mem_size_mib = 128;
  std::optional<bool> smt{};
  std::optional<bool> track_dirty_pages{};
  std::optional<std::string> huge_pages{};  // None, 2M
  static std::string path() { return "/machine-config"; }
  nlohmann::json to_json() const;
  static Result<MachineConfiguration> from_json(const nlohmann::json& j);
};

// PUT /boot-source. kernel_image_path must be an uncompressed ELF vmlinux on x86_64.
struct BootSource {
  std::string kernel_image_path;
  std::optional<std::string> initrd_path{};
  std::optional<std::string> boot_args{};
  static std::string path() { return "/boot-source"; }
  nlohmann::json to_json() const;
};

// PUT /serial: where the guest's ttyS0 goes (instead of Firecracker's stdout).
struct SerialDevice {
  std::optional<std::string> serial_out_path{};
  static std::string path() { return "/serial"; }
  nlohmann::json to_json() const;
};

// PUT /drives/{drive_id}. drive_id: letters, digits and '_' only (Firecracker rejects others).
struct Drive {
  std::string drive_id;
  std::string path_on_host;
  bool is_root_device = false;
  std::optional<bool> is_read_only{};
  std::optional<std::string> partuuid{};
  std::optional<std::string> cache_type{};  // Unsafe, Writeback
  std::optional<std::string> io_engine{};   // Sync, Async
  std::string path() const { return "/drives/" + drive_id; }
  nlohmann::json to_json() const;
};

// PUT /network-interfaces/{iface_id}
struct NetworkInterface {
  std::string iface_id;
  std::string host_dev_name;  // the tap device, in Firecracker's network namespace
  std::optional<std::string> guest_mac{};
  std::optional<int> mtu{};
  std::string path() const { return "/network-interfaces/" + iface_id; }
  nlohmann::json to_json() const;
};

// PUT /vsock. Host-initiated connections: connect to uds_path, send "CONNECT <port>\n".
struct Vsock {
  uint32_t guest_cid = 3;
  std::string uds_path;
  static std::string path() { return "/vsock"; }
  nlohmann::json to_json() const;
};

// PUT /mmds/config
struct MmdsConfig {
  std::vector<std::string> network_interfaces;
  std::optional<std::string> version{};  // V1, V2
  std::optional<std::string> ipv4_address{};
  std::optional<bool> imds_compat{};
  static std::string path() { return "/mmds/config"; }
  nlohmann::json to_json() const;
};

// PUT /mmds: the data store itself is free-form JSON (MmdsContentsObject).
inline std::string mmds_path() { return "/mmds"; }

// PUT /actions
enum class ActionType { kInstanceStart, kSendCtrlAltDel, kFlushMetrics };
struct InstanceActionInfo {
  ActionType action_type = ActionType::kInstanceStart;
  static std::string path() { return "/actions"; }
  nlohmann::json to_json() const;
};

// PATCH /vm
enum class VmState { kPaused, kResumed };
struct Vm {
  VmState state = VmState::kPaused;
  static std::string path() { return "/vm"; }
  nlohmann::json to_json() const;
};

// PUT /snapshot/create (the VM must be paused)
enum class SnapshotType { kFull, kDiff };
struct SnapshotCreateParams {
  std::string mem_file_path;
  std::string snapshot_path;
  std::optional<SnapshotType> snapshot_type{};
  static std::string path() { return "/snapshot/create"; }
  nlohmann::json to_json() const;
};

// PUT /snapshot/load (only on a fresh process: nothing but logger and metrics configured)
struct MemoryBackend {
  enum class Type { kFile, kUffd };
  Type backend_type = Type::kFile;
  std::string backend_path;
  nlohmann::json to_json() const;
};
struct NetworkOverride {
  std::string iface_id;
  std::string host_dev_name;
  nlohmann::json to_json() const;
};
struct SnapshotLoadParams {
  std::string snapshot_path;
  MemoryBackend mem_backend;
  std::optional<bool> track_dirty_pages{};
  std::optional<bool> resume_vm{};
  std::vector<NetworkOverride> network_overrides{};  // omitted when empty
  std::optional<std::string> vsock_override_uds_path{};
  static std::string path() { return "/snapshot/load"; }
  nlohmann::json to_json() const;
};

// GET / answer.
struct InstanceInfo {
  std::string id;
  std::string state;  // "Not started", "Running", "Paused"
  std::string vmm_version;
  std::string app_name;
  static Result<InstanceInfo> from_json(const nlohmann::json& j);
};

std::string to_string(ActionType t);
std::string to_string(VmState s);
std::string to_string(SnapshotType t);

// True when id is acceptable as a Firecracker resource id in a path (drive_id, iface_id).
bool valid_resource_id(const std::string& id);
// Turns any text into a valid resource id ('-' and others become '_').
std::string to_resource_id(const std::string& text);
// True when id is acceptable as Firecracker's / the jailer's --id (letters, digits, '-', <= 64).
bool valid_instance_id(const std::string& id);

}  // namespace fcvm::vmm::firecracker
