#include "fcvm/vm/describe.hpp"

#include "fcvm/image/oci.hpp"
#include "fcvm/vm/snapshot.hpp"

namespace fcvm::vm {

nlohmann::json vm_json(const state::VmRecord& r) {
  auto opt_int = [](const std::optional<int64_t>& v) -> nlohmann::json {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  auto proc = [](const sys::ProcessIdentity& p) -> nlohmann::json {
    if (p.empty()) return nullptr;
    return {{"pid", p.pid}, {"start_time", p.start_time}, {"boot_id", p.boot_id}};
  };
  auto options = nlohmann::json::parse(r.options_json, nullptr, false);
  auto network =
      nlohmann::json::parse(r.network_json.empty() ? "null" : r.network_json, nullptr, false);
  nlohmann::json ports = nlohmann::json::array();
  if (!r.ports.empty()) {
    size_t start = 0;
    for (;;) {
      auto comma = r.ports.find(',', start);
      ports.push_back(r.ports.substr(start, comma == std::string::npos ? comma : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return {
      {"id", r.id},
      {"name", r.name},
      {"image", r.image},
      {"backend", r.backend},
      {"vmm_version",
       r.vmm_version.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.vmm_version)},
      {"state",
       {{"status", std::string(state::status_name(r.status))},
        {"exit_code", opt_int(r.exit_code)},
        {"error", r.error},
        {"created_ms", r.created_ms},
        {"started_ms", opt_int(r.started_ms)},
        {"finished_ms", opt_int(r.finished_ms)},
        {"restart_count", r.restart_count},
        {"expires_ms", opt_int(r.expires_ms)}}},
      {"restart_policy", options.is_discarded() ? nlohmann::json("no")
                                                : options.value("restart", nlohmann::json("no"))},
      {"resources", {{"vcpus", r.vcpus}, {"mem_mib", r.mem_mib}}},
      {"ports", ports},
      {"labels", options.is_discarded() ? nlohmann::json::object()
                                        : options.value("labels", nlohmann::json::object())},
      {"network", network.is_discarded() ? nlohmann::json(nullptr) : network},
      {"config", options.is_discarded() ? nlohmann::json(nullptr) : options},
      {"auto_remove", r.auto_remove},
      {"snapshot", r.snapshot.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.snapshot)},
      {"image_id", r.image_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.image_id)},
      {"paths",
       {{"dir", r.dir},
        {"container_log", r.dir + "/container.log"},
        {"console_log", r.dir + "/console.log"},
        {"monitor_log", r.dir + "/monitor.log"}}},
      {"processes",
       {{"monitor", proc(r.monitor)}, {"vmm", proc(r.vmm)}, {"network_helper", proc(r.helper)}}}};
}

nlohmann::json snapshot_json(state::VmStore& store, const state::SnapshotRecord& s) {
  auto files = vm::snapshot_files(s);
  auto options = nlohmann::json::parse(s.options_json, nullptr, false);
  auto clones = nlohmann::json::array();
  if (auto list = state::SnapshotStore(store.db()).clones_of(s.id)) {
    for (const auto& [id, name] : *list) clones.push_back({{"id", id}, {"name", name}});
  }
  return {
      {"id", s.id},
      {"name", s.name},
      {"status", std::string(state::snapshot_status_name(s.status))},
      {"source", {{"id", s.source_id}, {"name", s.source_name}}},
      {"image", s.image},
      {"backend", s.backend},
      {"resources", {{"vcpus", s.vcpus}, {"mem_mib", s.mem_mib}}},
      {"kernel", s.kernel},
      {"base_disk", s.base_disk},
      {"image_id", s.image_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.image_id)},
      {"size_bytes", s.size_bytes},
      {"created_ms", s.created_ms},
      {"completed_ms", s.completed_ms ? nlohmann::json(*s.completed_ms) : nullptr},
      {"config", options.is_discarded() ? nlohmann::json(nullptr) : options},
      {"clones", clones},
      {"paths",
       {{"dir", s.dir}, {"memory", files.memory}, {"state", files.state}, {"disk", files.disk}}}};
}

nlohmann::json image_json(const state::ImageRecord& r) {
  nlohmann::json config = nlohmann::json::parse(r.config_json, nullptr, false);
  nlohmann::json out = {{"id", r.id},
                        {"names", r.names},
                        {"disk", r.disk},
                        {"format", r.format},
                        {"disk_bytes", r.size_bytes},
                        {"content_bytes", r.content_bytes},
                        {"layers", r.layers},
                        {"manifest_digest", r.manifest_digest},
                        {"created_ms", r.created_ms}};
  if (auto c = image::parse_image_config(r.config_json)) {
    out["config"] = {{"entrypoint", c->entrypoint},
                     {"cmd", c->cmd},
                     {"env", c->env},
                     {"workdir", c->workdir},
                     {"user", c->user},
                     {"stop_signal", c->stop_signal},
                     {"exposed_ports", c->exposed_ports},
                     {"labels", c->labels},
                     {"architecture", c->architecture},
                     {"os", c->os}};
  }
  return out;
}

}  // namespace fcvm::vm
