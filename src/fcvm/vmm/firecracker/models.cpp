#include "fcvm/vmm/firecracker/models.hpp"

#include <fmt/format.h>

#include <cctype>

namespace fcvm::vmm::firecracker {

using nlohmann::json;

namespace {
template <typename T>
void put_opt(json& j, const char* key, const std::optional<T>& value) {
  if (value) j[key] = *value;
}
}  // namespace

std::string to_string(ActionType t) {
  switch (t) {
    case ActionType::kInstanceStart:
      return "InstanceStart";
    case ActionType::kSendCtrlAltDel:
      return "SendCtrlAltDel";
    case ActionType::kFlushMetrics:
      return "FlushMetrics";
  }
  return "InstanceStart";
}

std::string to_string(VmState s) { return s == VmState::kPaused ? "Paused" : "Resumed"; }

std::string to_string(SnapshotType t) { return t == SnapshotType::kFull ? "Full" : "Diff"; }

json Logger::to_json() const {
  json j = {{"log_path", log_path}};
  put_opt(j, "level", level);
  put_opt(j, "show_level", show_level);
  put_opt(j, "show_log_origin", show_log_origin);
  put_opt(j, "module", module);
  return j;
}

json Metrics::to_json() const { return {{"metrics_path", metrics_path}}; }

json MachineConfiguration::to_json() const {
  json j = {{"vcpu_count", vcpu_count}, {"mem_size_mib", mem_size_mib}};
  put_opt(j, "smt", smt);
  put_opt(j, "track_dirty_pages", track_dirty_pages);
  put_opt(j, "huge_pages", huge_pages);
  return j;
}

Result<MachineConfiguration> MachineConfiguration::from_json(const json& j) {
  try {
    MachineConfiguration m;
    m.vcpu_count = j.at("vcpu_count").get<int>();
    m.mem_size_mib = j.at("mem_size_mib").get<int>();
    if (j.contains("smt")) m.smt = j.at("smt").get<bool>();
    if (j.contains("track_dirty_pages"))
      m.track_dirty_pages = j.at("track_dirty_pages").get<bool>();
    if (j.contains("huge_pages")) m.huge_pages = j.at("huge_pages").get<std::string>();
    return m;
  } catch (const json::exception& e) {
    return fail(ErrorCode::kProtocol, fmt::format("bad machine configuration: {}", e.what()));
  }
}

json BootSource::to_json() const {
  json j = {{"kernel_image_path", kernel_image_path}};
  put_opt(j, "initrd_path", initrd_path);
  put_opt(j, "boot_args", boot_args);
  return j;
}

json SerialDevice::to_json() const {
  json j = json::object();
  put_opt(j, "serial_out_path", serial_out_path);
  return j;
}

json Drive::to_json() const {
  json j = {
      {"drive_id", drive_id}, {"path_on_host", path_on_host}, {"is_root_device", is_root_device}};
  put_opt(j, "is_read_only", is_read_only);
  put_opt(j, "partuuid", partuuid);
  put_opt(j, "cache_type", cache_type);
  put_opt(j, "io_engine", io_engine);
  return j;
}

json NetworkInterface::to_json() const {
  json j = {{"iface_id", iface_id}, {"host_dev_name", host_dev_name}};
  put_opt(j, "guest_mac", guest_mac);
  put_opt(j, "mtu", mtu);
  return j;
}

json Vsock::to_json() const { return {{"guest_cid", guest_cid}, {"uds_path", uds_path}}; }

json MmdsConfig::to_json() const {
  json j = {{"network_interfaces", network_interfaces}};
  put_opt(j, "version", version);
  put_opt(j, "ipv4_address", ipv4_address);
  put_opt(j, "imds_compat", imds_compat);
  return j;
}

json InstanceActionInfo::to_json() const { return {{"action_type", to_string(action_type)}}; }

json Vm::to_json() const { return {{"state", to_string(state)}}; }

json SnapshotCreateParams::to_json() const {
  json j = {{"mem_file_path", mem_file_path}, {"snapshot_path", snapshot_path}};
  if (snapshot_type) j["snapshot_type"] = to_string(*snapshot_type);
  return j;
}

json MemoryBackend::to_json() const {
  return {{"backend_type", backend_type == Type::kFile ? "File" : "Uffd"},
          {"backend_path", backend_path}};
}

json NetworkOverride::to_json() const {
  return {{"iface_id", iface_id}, {"host_dev_name", host_dev_name}};
}

json SnapshotLoadParams::to_json() const {
  json j = {{"snapshot_path", snapshot_path}, {"mem_backend", mem_backend.to_json()}};
  put_opt(j, "track_dirty_pages", track_dirty_pages);
  put_opt(j, "resume_vm", resume_vm);
  if (!network_overrides.empty()) {
    json overrides = json::array();
    for (const auto& o : network_overrides) overrides.push_back(o.to_json());
    j["network_overrides"] = overrides;
  }
  if (vsock_override_uds_path) j["vsock_override"] = {{"uds_path", *vsock_override_uds_path}};
  return j;
}

Result<InstanceInfo> InstanceInfo::from_json(const json& j) {
  try {
    InstanceInfo i;
    i.id = j.at("id").get<std::string>();
    i.state = j.at("state").get<std::string>();
    i.vmm_version = j.at("vmm_version").get<std::string>();
    i.app_name = j.at("app_name").get<std::string>();
    return i;
  } catch (const json::exception& e) {
    return fail(ErrorCode::kProtocol, fmt::format("bad instance info: {}", e.what()));
  }
}

bool valid_resource_id(const std::string& id) {
  if (id.empty()) return false;
  for (char c : id) {
    if (c != '_' && std::isalnum(static_cast<unsigned char>(c)) == 0) return false;
  }
  return true;
}

std::string to_resource_id(const std::string& text) {
  std::string id = text;
  for (char& c : id) {
    if (c != '_' && std::isalnum(static_cast<unsigned char>(c)) == 0) c = '_';
  }
  return id;
}

bool valid_instance_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (c != '-' && std::isalnum(static_cast<unsigned char>(c)) == 0) return false;
  }
  return true;
}

}  // namespace fcvm::vmm::firecracker
