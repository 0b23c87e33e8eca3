// fcvm stop [-t SECS] NAME...   fcvm start NAME...   fcvm restart [-t SECS] NAME...
// fcvm rm [-f] NAME...          fcvm kill [-s SIGNAL] NAME...
#include <fmt/format.h>

#include <memory>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/vm/filter.hpp"
#include "fcvm/vm/lifecycle.hpp"

namespace fcvm::cli {
namespace {

// Applies fn to each VM named; reports each failure; the exit code of the worst one.
template <typename Fn>
int for_each_vm(const char* verb, const std::vector<std::string>& refs, Fn fn) {
  Session s;
  if (auto r = open_session(s); !r) return report_error(r.error().wrap(verb));
  int rc = k_exit_ok;
  for (const auto& ref : refs) {
    auto rec = resolve(s, ref);
    Result<> done = rec ? fn(s, *rec) : Result<>(tl::unexpected<Error>(rec.error()));
    if (!done) {
      rc = std::max(rc, report_error(done.error().wrap(fmt::format("{} {}", verb, ref))));
      continue;
    }
    fmt::print("{}\n", rec->name);
  }
  return rc;
}

}  // namespace

namespace {
// stop and restart: VMs and the seconds before SIGKILL.
struct StopArgs {
  std::vector<std::string> refs;
  std::string timeout = "10";
};

std::shared_ptr<StopArgs> add_stop_options(CLI::App* cmd) {
  auto args = std::make_shared<StopArgs>();
  cmd->add_option("-t,--time", args->timeout, "Seconds to wait before SIGKILL (default 10)");
  cmd->add_option("vm", args->refs, "VM names or ids")->required();
  return args;
}

Result<int> stop_timeout(const char* verb, const std::string& text) {
  auto t = parse_int(text, 0, 3600);
  if (!t) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("{}: invalid -t \"{}\": expected seconds 0-3600", verb, text));
  }
  return static_cast<int>(*t);
}
}  // namespace

Command add_stop(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "stop",
      "Stop VMs: the container gets SIGTERM, then SIGKILL after the timeout, then the VM "
      "powers off (the VMM is killed as a last resort)");
  auto args = add_stop_options(cmd);
  return {cmd, [args]() -> int {
            auto t = stop_timeout("stop", args->timeout);
            if (!t) return report_error(t.error());
            return for_each_vm("stop", args->refs, [&](Session& s, const state::VmRecord& rec) {
              return vm::stop_vm(*s.store, rec, *t);
            });
          }};
}

Command add_restart(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "restart", "Stop VMs that run (as fcvm stop does), then boot them again on their disks");
  auto args = add_stop_options(cmd);
  return {cmd, [args]() -> int {
            auto t = stop_timeout("restart", args->timeout);
            if (!t) return report_error(t.error());
            return for_each_vm("restart", args->refs, [&](Session& s, const state::VmRecord& rec) {
              return vm::restart_vm(*s.ctx, *s.store, rec, *t);
            });
          }};
}

Command add_pause(CLI::App& app) {
  auto refs = std::make_shared<std::vector<std::string>>();
  auto* cmd = app.add_subcommand(
      "pause",
      "Pause running VMs: the VMM stops their vCPUs (memory is kept); exec, kill, snapshot and "
      "volume sync are refused until unpause; stop and rm still work");
  cmd->add_option("vm", *refs, "VM names or ids")->required();
  return {cmd, [refs]() -> int {
            return for_each_vm("pause", *refs, [](Session& s, const state::VmRecord& rec) {
              return vm::pause_vm(*s.store, rec, true);
            });
          }};
}

Command add_unpause(CLI::App& app) {
  auto refs = std::make_shared<std::vector<std::string>>();
  auto* cmd = app.add_subcommand("unpause", "Let paused VMs run again");
  cmd->add_option("vm", *refs, "VM names or ids")->required();
  return {cmd, [refs]() -> int {
            return for_each_vm("unpause", *refs, [](Session& s, const state::VmRecord& rec) {
              return vm::pause_vm(*s.store, rec, false);
            });
          }};
}

Command add_kill(CLI::App& app) {
  struct Args {
    std::vector<std::string> refs;
    std::string signal = "KILL";
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "kill",
      "Send a signal to the container of running VMs (default KILL). The VM powers off when the "
      "container ends, as with any exit");
  cmd->add_option("-s,--signal", args->signal,
                  "Signal: a name (KILL, SIGTERM, hup...) or a number 1-64");
  cmd->add_option("vm", args->refs, "VM names or ids")->required();
  return {cmd, [args]() -> int {
            if (!vm::is_signal_name(args->signal)) {
              return report_error(Error(
                  ErrorCode::kInvalidInput,
                  fmt::format("kill: invalid signal \"{}\": expected HUP, INT, QUIT, KILL, USR1, "
                              "USR2, PIPE, ALRM, TERM, CONT, STOP, TSTP, WINCH or 1-64",
                              args->signal)));
            }
            return for_each_vm("kill", args->refs, [&](Session& s, const state::VmRecord& rec) {
              return vm::signal_container(*s.store, rec, args->signal);
            });
          }};
}

Command add_start(CLI::App& app) {
  struct Args {
    std::vector<std::string> refs;
    bool all = false;
    std::vector<std::string> filters;
    bool attach = false;
    bool interactive = false;
    std::string detach_keys = vm::k_default_detach_keys;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("start", "Boot stopped VMs again on their preserved disks");
  cmd->add_flag("-a,--attach", args->attach,
                "Stay attached to the container (one VM): its output, and its exit code as ours");
  cmd->add_flag("-i,--interactive", args->interactive,
                "With -a: your stdin is the container's (a VM run with -i; with -t your terminal, "
                "raw)");
  add_detach_keys_option(cmd, args->detach_keys, "With -a -i on a terminal");
  cmd->add_flag("--all", args->all,
                "Start every VM that is not running (with --filter: those that match; "
                "fcvm-restart.service runs --all --filter restart-policy=always at boot)");
  cmd->add_option("-f,--filter", args->filters,
                  "With --all: as ls --filter (label=, name=, id=, status=, restart-policy=)")
      ->allow_extra_args(false);
  cmd->add_option("vm", args->refs, "VM names or ids");
  return {cmd, [args]() -> int {
            if (args->all == !args->refs.empty()) {
              return report_error(
                  Error(ErrorCode::kInvalidInput, "start: name VMs, or --all (not both)"));
            }
            if (!args->filters.empty() && !args->all) {
              return report_error(Error(ErrorCode::kInvalidInput, "start: --filter needs --all"));
            }
            if (args->all) {
              if (args->attach) {
                return report_error(
                    Error(ErrorCode::kInvalidInput, "start -a: attach to one VM at a time"));
              }
              auto filter = vm::parse_vm_filters(args->filters);
              if (!filter) return report_error(filter.error().wrap("start"));
              Session s;
              if (auto r = open_session(s); !r) return report_error(r.error().wrap("start"));
              auto vms = vm::list_vms(*s.store);
              if (!vms) return report_error(vms.error().wrap("start"));
              std::vector<std::string> ids;
              for (const auto& rec : *vms) {
                if (!vm::is_active(rec) && vm::matches(*filter, rec)) ids.push_back(rec.id);
              }
              return for_each_vm("start", ids, [](Session& s2, const state::VmRecord& rec) {
                return vm::start_vm(*s2.ctx, *s2.store, rec);
              });
            }
            if (!args->attach) {
              if (args->interactive) {
                return report_error(
                    Error(ErrorCode::kInvalidInput, "start: -i needs -a (attach to the VM)"));
              }
              return for_each_vm("start", args->refs, [](Session& s, const state::VmRecord& rec) {
                return vm::start_vm(*s.ctx, *s.store, rec);
              });
            }
            if (args->refs.size() != 1) {
              return report_error(
                  Error(ErrorCode::kInvalidInput, "start -a: attach to one VM at a time"));
            }
            if (auto keys = vm::parse_detach_keys(args->detach_keys); !keys) {
              return report_error(keys.error().wrap("start"));
            }
            Session s;
            if (auto r = open_session(s); !r) return report_error(r.error().wrap("start"));
            auto who = "start " + args->refs[0];
            auto rec = resolve(s, args->refs[0]);
            if (!rec) return report_error(rec.error().wrap(who));
            auto monitor = vm::begin_start(*s.ctx, *s.store, *rec, /*wait_attach=*/true);
            if (!monitor) return report_error(monitor.error().wrap(who));
            auto end =
                attach_terminal(*rec, monitor->ready.get(), args->detach_keys, args->interactive);
            monitor->process.detach();
            if (!end) return report_error(end.error().wrap(who));
            return end->exit_code;
          }};
}

Command add_rm(CLI::App& app) {
  struct Args {
    std::vector<std::string> refs;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("rm", "Remove VMs: disk, sockets, logs and record");
  cmd->add_flag("-f,--force", args->force, "Stop running VMs first (killing them)");
  cmd->add_option("vm", args->refs, "VM names or ids")->required();
  return {cmd, [args]() -> int {
            return for_each_vm("rm", args->refs, [&](Session& s, const state::VmRecord& rec) {
              return vm::remove_vm(*s.store, rec, args->force);
            });
          }};
}

}  // namespace fcvm::cli
