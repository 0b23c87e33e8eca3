// fcvm inspect NAME|ID...
#include <fmt/format.h>

#include <memory>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/inspect_json.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/vm/context.hpp"

namespace fcvm::cli {

nlohmann::json inspect_json(const state::VmRecord& r) {
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
        {"restart_count", r.restart_count}}},
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

Command add_inspect(CLI::App& app) {
  auto refs = std::make_shared<std::vector<std::string>>();
  auto* cmd = app.add_subcommand("inspect", "Show VMs as JSON");
  cmd->add_option("vm", *refs, "VM names or ids")->required();
  return {cmd, [refs]() -> int {
            Session s;
            if (auto r = open_session(s); !r) return report_error(r.error().wrap("inspect"));
            auto arr = nlohmann::json::array();
            int rc = k_exit_ok;
            for (const auto& ref : *refs) {
              auto rec = resolve(s, ref);
              if (!rec) {
                rc = report_error(rec.error().wrap("inspect"));
                continue;
              }
              arr.push_back(inspect_json(*rec));
            }
            if (!arr.empty()) fmt::print("{}\n", arr.dump(2));
            return rc;
          }};
}

}  // namespace fcvm::cli
