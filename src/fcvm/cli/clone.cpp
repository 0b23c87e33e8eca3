// fcvm clone --snapshot NAME [--name X] [-p ...] [-d] [--wait-ready ...]
#include <fmt/format.h>

#include <memory>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/vm/lifecycle.hpp"
#include "fcvm/vm/snapshot.hpp"

namespace fcvm::cli {

Command add_clone(CLI::App& app) {
  struct Args {
    std::string snapshot;
    std::string name;
    std::vector<std::string> publish;
    std::string network;
    std::string wait_ready;
    std::string timings_file;
    bool keep_on_failure = false;
    bool detach = false;
    bool rm = false;
    bool keep = false;
    std::vector<std::string> labels;
    std::string ttl;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "clone", "Start a new VM from a snapshot: fcvm clone --snapshot NAME [OPTIONS]");
  cmd->footer(
      "The clone resumes where the snapshot was taken (the container already running), with its "
      "own copy-on-write disk over the snapshot's, the snapshot's memory mapped copy-on-write, "
      "and its own network namespace (same guest address, its own published ports). Image, "
      "command, environment, memory and vCPUs are the snapshot's. Stopped and started again, a "
      "clone boots from its own disk.");
  cmd->add_option("--snapshot", args->snapshot, "The snapshot (name or id)")->required();
  cmd->add_option("--name", args->name, "VM name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 63)");
  cmd->add_option("-p,--publish", args->publish,
                  "Publish a port: [IP:]HOSTPORT:GUESTPORT[/tcp|/udp]; IP defaults to 127.0.0.1")
      ->allow_extra_args(false);
  cmd->add_option("--network", args->network,
                  "rootless | privileged (default: the snapshot's mode)");
  cmd->add_option("-l,--label", args->labels,
                  "Set a label K=V (repeatable; over the snapshot's labels)")
      ->allow_extra_args(false);
  cmd->add_option("--timeout", args->ttl,
                  "Stop the clone this many seconds after it was created (its time-to-live)")
      ->option_text("SECONDS");
  cmd->add_option("--wait-ready", args->wait_ready,
                  "When the clone counts as ready (as for run); default: the container runs");
  cmd->add_flag("--keep-on-failure", args->keep_on_failure,
                "Keep the VM running when its readiness gate fails (for debugging)");
  cmd->add_option("--timings", args->timings_file, "Append start-up milestones as JSON lines")
      ->group("");
  cmd->add_flag("-d,--detach", args->detach, "Run in the background: print the VM id once ready");
  cmd->add_flag("--rm", args->rm, "With -d: remove the VM when it ends");
  cmd->add_flag("--keep", args->keep, "In the foreground: keep the VM after it ends");
  return {
      cmd, [args]() -> int {
        // Everything that can be checked without the store first: bad input creates nothing.
        if (args->rm && args->keep) {
          return report_error(Error(ErrorCode::kInvalidInput, "clone: --rm and --keep conflict"));
        }
        vm::CloneRequest request{args->name,
                                 args->publish,
                                 args->network,
                                 args->wait_ready,
                                 args->keep_on_failure,
                                 args->timings_file,
                                 args->labels,
                                 args->ttl};
        auto c = vm::validate_clone(request);
        if (!c) return report_error(c.error().wrap("clone"));
        Session s;
        if (auto r = open_session(s); !r) return report_error(r.error());
        auto snap = vm::find_snapshot(*s.store, args->snapshot);
        if (!snap) {
          auto e = snap.error();
          // A snapshot that does not exist is bad input like a bad name.
          if (e.code() == ErrorCode::kNotFound) e = Error(ErrorCode::kInvalidInput, e.message());
          return report_error(e.wrap("clone"));
        }
        auto options = vm::clone_run_options(*snap, *c);
        if (!options) return report_error(options.error().wrap("clone"));

        bool auto_remove = args->detach ? args->rm : !args->keep;
        auto rec = vm::create_clone(*s.ctx, *s.store, *snap, *options, auto_remove);
        if (!rec) {
          return report_error(
              rec.error().wrap(args->name.empty() ? std::string("clone") : "clone " + args->name));
        }
        return launch_vm(s, *rec, {args->detach, "clone", args->timings_file});
      }};
}

}  // namespace fcvm::cli
