// fcvm attach [--detach-keys KEYS] [--no-stdin] VM
#include <fmt/format.h>

#include <memory>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/vm/lifecycle.hpp"

namespace fcvm::cli {

Command add_attach(CLI::App& app) {
  struct Args {
    std::string ref;
    bool no_stdin = false;
    std::string detach_keys = vm::k_default_detach_keys;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "attach", "Attach this terminal to a running VM's container (its output from now on)");
  cmd->footer(
      "Input reaches the container when it runs with -i (run -dit); with -t the terminal is "
      "raw and its size followed. The detach keys (default ctrl-p,ctrl-q) leave it running; "
      "^C (without -t) stops the VM as it does for a foreground run. The exit code is the "
      "container's when it ends while attached.");
  cmd->add_flag("--no-stdin", args->no_stdin, "Do not forward stdin");
  add_detach_keys_option(cmd, args->detach_keys, "With a terminal (run -it)");
  cmd->add_option("vm", args->ref, "VM name or id")->required();
  return {cmd, [args]() -> int {
            if (auto keys = vm::parse_detach_keys(args->detach_keys); !keys) {
              return report_error(keys.error().wrap("attach"));
            }
            Session s;
            if (auto r = open_session(s); !r) return report_error(r.error().wrap("attach"));
            auto who = "attach " + args->ref;
            auto rec = resolve(s, args->ref);
            if (!rec) return report_error(rec.error().wrap(who));
            if (rec->status != state::VmStatus::kRunning &&
                rec->status != state::VmStatus::kPaused &&
                rec->status != state::VmStatus::kStarting) {
              return report_error(
                  Error(ErrorCode::kInvalidInput,
                        fmt::format("VM {} is {}: fcvm start -a attaches while starting it",
                                    rec->name, state::status_name(rec->status)))
                      .wrap("attach"));
            }
            auto end = attach_terminal(*rec, -1, args->detach_keys, !args->no_stdin);
            if (!end) return report_error(end.error().wrap(who));
            return end->exit_code;
          }};
}

}  // namespace fcvm::cli
