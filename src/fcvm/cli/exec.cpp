// fcvm exec [-i] [-t] [-e K=V] [-w DIR] [-u USER] [--vm] NAME [--] CMD [ARG...]
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <optional>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/vm/attach.hpp"
#include "fcvm/vm/lifecycle.hpp"

namespace fcvm::cli {

Command add_exec(CLI::App& app) {
  struct Args {
    std::string ref;
    std::vector<std::string> argv;
    std::vector<std::string> env;
    std::string workdir;
    std::string user;
    bool interactive = false;
    bool tty = false;
    bool in_vm = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "exec", "Run a command in a VM's container: fcvm exec [OPTIONS] VM COMMAND [ARG...]");
  cmd->footer(
      "Options go before VM; everything after VM is the command and its arguments, as with "
      "podman exec (a `--` after VM is also accepted).");
  // Everything after VM belongs to the command, not to fcvm.
  cmd->prefix_command();
  cmd->add_flag("-i,--interactive", args->interactive, "Forward stdin");
  cmd->add_flag("-t,--tty", args->tty, "Allocate a terminal (window size follows yours)");
  cmd->add_option("-e,--env", args->env, "Set an environment variable K=V")
      ->allow_extra_args(false);
  cmd->add_option("-w,--workdir", args->workdir, "Working directory");
  cmd->add_option("-u,--user", args->user, "User (name or UID[:GID]; numeric only with --vm)");
  cmd->add_flag("--vm", args->in_vm, "Run in the guest OS instead of the container");
  return {
      cmd, [args, cmd]() -> int {
        // VM is the first word fcvm does not know; the rest is the command.
        auto words = cmd->remaining();
        if (words.empty()) {
          return report_error(
              Error(ErrorCode::kInvalidInput, "exec: no VM given (fcvm exec VM COMMAND...)"));
        }
        if (words.front().size() > 1 && words.front()[0] == '-') {
          return report_error(Error(ErrorCode::kInvalidInput,
                                    fmt::format("exec: unknown option \"{}\"", words.front())));
        }
        args->ref = words.front();
        args->argv.assign(words.begin() + 1, words.end());
        if (!args->argv.empty() && args->argv.front() == "--") args->argv.erase(args->argv.begin());
        if (args->argv.empty()) {
          return report_error(
              Error(ErrorCode::kInvalidInput, "exec: no command given (fcvm exec VM COMMAND...)"));
        }
        for (const auto& e : args->env) {
          if (e.find('=') == std::string::npos || e[0] == '=') {
            return report_error(Error(ErrorCode::kInvalidInput,
                                      fmt::format("exec: invalid --env \"{}\": expected K=V", e)));
          }
        }
        if (!args->workdir.empty() && args->workdir[0] != '/') {
          return report_error(Error(
              ErrorCode::kInvalidInput,
              fmt::format("exec: invalid --workdir \"{}\": must be absolute", args->workdir)));
        }
        Session s;
        if (auto r = open_session(s); !r) return report_error(r.error().wrap("exec"));
        auto rec = resolve(s, args->ref);
        if (!rec) return report_error(rec.error().wrap("exec"));
        // Starting (its readiness gate pending) or running: the monitor knows whether the
        // container runs.
        if (!vm::is_active(*rec)) {
          return report_error(Error(ErrorCode::kInvalidInput,
                                    fmt::format("exec: VM {} is not running (status: {})",
                                                rec->name, state::status_name(rec->status))));
        }
        vm::ExecRequest req{args->argv,        args->env, args->workdir, args->user,
                            args->interactive, args->tty, args->in_vm,   terminal_size};
        if (args->tty) {
          // The container's terminal type is ours unless -e TERM= says otherwise.
          bool set = false;
          for (const auto& e : req.env) set = set || e.rfind("TERM=", 0) == 0;
          if (const char* term = std::getenv("TERM"); term != nullptr && !set) {
            req.env.push_back(std::string("TERM=") + term);
          }
        }
        std::optional<RawTerminal> raw;
        if (args->tty && args->interactive) raw.emplace();
        auto code = vm::exec_in_vm(*rec, req);
        raw.reset();
        if (!code) return report_error(code.error());
        return *code;
      }};
}

}  // namespace fcvm::cli
