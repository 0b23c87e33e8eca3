// Internal subcommands, not for users: `__names` (shell completion). (A VM's monitor is this
// binary too, but main() hands `__monitor` to vm::monitor_main before the CLI parses anything.)
#include <fmt/format.h>

#include <memory>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/vm/lifecycle.hpp"

namespace fcvm::cli {

Command add_names(CLI::App& app) {
  auto* cmd = app.add_subcommand("__names", "");
  cmd->group("");
  return {cmd, []() -> int {
            Session s;
            if (!open_session(s)) return k_exit_failure;
            auto all = s.store->list();
            if (!all) return k_exit_failure;
            std::string out;
            for (const auto& r : *all) out += r.name + "\n";
            fmt::print("{}", out);
            return k_exit_ok;
          }};
}

}  // namespace fcvm::cli
