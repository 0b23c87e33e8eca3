// Snapshots in the fake Firecracker. The "state file" is JSON holding the configuration (so a load
// restores the same devices), the "memory file" a few marker bytes.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fake_firecracker/vmm.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fake_fc {

using nlohmann::json;

namespace {

std::string os_error(int e) { return fmt::format("{} (os error {})", std::strerror(e), e); }

constexpr const char* k_memory_marker = "fake-firecracker guest memory\n";

}  // namespace

HttpAnswer FakeVmm::snapshot_create(const json& body) {
  if (!started()) {
    return fault("The requested operation is not supported before starting the microVM.");
  }
  if (m_state != "Paused")
    return fault("Cannot save the microVM state: the microVM is not paused.");
  if (body.value("snapshot_type", "Full") == "Diff" &&
      !m_machine.value("track_dirty_pages", false)) {
    return fault("Diff snapshots are not allowed on uVMs with dirty page tracking disabled.");
  }
  json state = {{"fake_firecracker_snapshot", 1}, {"config", full_config()}, {"mmds", m_mmds}};
  auto w = fcvm::write_file_atomic(body["snapshot_path"].get<std::string>(), state.dump());
  if (!w) return fault("Cannot save the microVM state: " + w.error().to_string());
  w = fcvm::write_file_atomic(body["mem_file_path"].get<std::string>(), k_memory_marker);
  if (!w) return fault("Cannot save the microVM memory: " + w.error().to_string());
  return {};
}

HttpAnswer FakeVmm::snapshot_load(const json& body) {
  if (started() || m_boot_source || m_machine_set || !m_drives.empty() || !m_networks.empty() ||
      m_vsock || m_mmds_config) {
    return fault(
        "Loading a microVM snapshot not allowed after configuring boot-specific "
        "resources.");
  }
  if (older_than_1_16()) {
    // v1.14.2's answer, word for word (serde's unknown-field error), for the fields 1.16 added.
    for (const char* added : {"vsock_override", "clock_realtime"}) {
      if (body.contains(added)) {
        return fault(fmt::format(
            "An error occurred when deserializing the json body of a request: unknown field "
            "`{}`, expected one of `snapshot_path`, `mem_file_path`, `mem_backend`, "
            "`enable_diff_snapshots`, `track_dirty_pages`, `resume_vm`, `network_overrides`.",
            added));
      }
    }
  }
  bool has_file = body.contains("mem_file_path");
  bool has_backend = body.contains("mem_backend");
  if (has_file == has_backend) {
    return fault("Exactly one of mem_file_path and mem_backend must be specified.");
  }
  auto mem_path = has_file ? body["mem_file_path"].get<std::string>()
                           : body["mem_backend"]["backend_path"].get<std::string>();
  if (has_backend && body["mem_backend"]["backend_type"] != "File") {
    return fault("Load snapshot error: the fake supports File memory backends only");
  }
  auto state_text = fcvm::read_file(body["snapshot_path"].get<std::string>());
  if (!state_text) {
    return fault("Load snapshot error: Cannot open snapshot file: " +
                 os_error(state_text.error().sys_errno()));
  }
  json state = json::parse(*state_text, nullptr, false);
  if (!state.is_object() || !state.contains("fake_firecracker_snapshot")) {
    return fault("Load snapshot error: Failed to load the microVM state: bad snapshot file");
  }
  if (::access(mem_path.c_str(), R_OK) != 0) {
    return fault("Load snapshot error: Cannot open the memory file: " + os_error(errno));
  }
  const json& config = state["config"];
  m_machine = config["machine-config"];
  m_drives = config["drives"].get<std::vector<json>>();
  m_networks = config["network-interfaces"].get<std::vector<json>>();
  if (config.contains("boot-source")) m_boot_source = config["boot-source"];
  if (config.contains("mmds-config")) m_mmds_config = config["mmds-config"];
  m_mmds = state.value("mmds", json::object());
  for (const auto& o : body.value("network_overrides", json::array())) {
    bool found = false;
    for (auto& n : m_networks) {
      if (n["iface_id"] != o["iface_id"]) continue;
      n["host_dev_name"] = o["host_dev_name"];
      found = true;
    }
    if (!found) {
      return fault(fmt::format("Load snapshot error: Invalid network override: no interface {}",
                               o["iface_id"].dump()));
    }
  }
  // The recorded disks are opened again while loading.
  for (const auto& d : m_drives) {
    auto path = d["path_on_host"].get<std::string>();
    if (::access(path.c_str(), R_OK) != 0) {
      return fault(fmt::format("Load snapshot error: Failed to restore the block device: {}: {}",
                               path, os_error(errno)));
    }
  }
  if (config.contains("vsock")) {
    json vsock = config["vsock"];
    if (body.contains("vsock_override")) vsock["uds_path"] = body["vsock_override"]["uds_path"];
    auto uds = vsock["uds_path"].get<std::string>();
    if (::access(uds.c_str(), F_OK) == 0) {
      return fault("Load snapshot error: vsock: UnixBind(" + os_error(EADDRINUSE) + ")");
    }
    auto listener = fcvm::unix_listen(uds);
    if (!listener) return fault("Load snapshot error: vsock: " + listener.error().to_string());
    m_vsock_listener = std::move(*listener);
    m_vsock = vsock;
  }
  bool resume = body.value("resume_vm", false);
  m_state = resume ? "Running" : "Paused";
  start_guest(!resume);
  return {};
}

}  // namespace fake_fc
