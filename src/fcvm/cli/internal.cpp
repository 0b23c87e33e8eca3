// Internal subcommands, not for users: `__monitor` (the per-VM monitor) and `__names` (shell
// completion).
#include <fmt/format.h>

#include <memory>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/vm/lifecycle.hpp"
#include "fcvm/vm/monitor.hpp"

namespace fcvm::cli {

Command add_monitor(CLI::App& app) {
  struct Args {
    std::string id;
    int ready_fd = -1;
    bool fresh = false;
    bool wait_attach = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("__monitor", "");
  cmd->group("");  // hidden from --help
  cmd->add_option("id", args->id)->required();
  cmd->add_option("--ready-fd", args->ready_fd);
  cmd->add_flag("--fresh", args->fresh);
  cmd->add_flag("--wait-attach", args->wait_attach);
  return {cmd, [args]() -> int {
            auto paths = vm::default_paths();
            if (!paths) return report_error(paths.error());
            vm::Context ctx{*paths, sys::default_runner()};
            return vm::monitor_main(ctx, args->id, args->ready_fd, args->fresh, args->wait_attach);
          }};
}

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
