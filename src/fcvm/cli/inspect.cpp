// fcvm inspect NAME|ID...
#include <fmt/format.h>

#include <memory>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/vm/context.hpp"
#include "fcvm/vm/describe.hpp"

namespace fcvm::cli {

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
              arr.push_back(vm::vm_json(*rec));
            }
            if (!arr.empty()) fmt::print("{}\n", arr.dump(2));
            return rc;
          }};
}

}  // namespace fcvm::cli
