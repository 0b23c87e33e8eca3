// fcvm stop [-t SECS] NAME...   fcvm start NAME...   fcvm rm [-f] NAME...
#include <fmt/format.h>

#include <memory>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/util/strings.hpp"
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

Command add_stop(CLI::App& app) {
  struct Args {
    std::vector<std::string> refs;
    std::string timeout = "10";
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "stop",
      "Stop VMs: the container gets SIGTERM, then SIGKILL after the timeout, then the VM "
      "powers off (the VMM is killed as a last resort)");
  cmd->add_option("-t,--time", args->timeout, "Seconds to wait before SIGKILL (default 10)");
  cmd->add_option("vm", args->refs, "VM names or ids")->required();
  return {cmd, [args]() -> int {
            auto t = parse_int(args->timeout, 0, 3600);
            if (!t) {
              return report_error(Error(
                  ErrorCode::kInvalidInput,
                  fmt::format("stop: invalid -t \"{}\": expected seconds 0-3600", args->timeout)));
            }
            return for_each_vm("stop", args->refs, [&](Session& s, const state::VmRecord& rec) {
              return vm::stop_vm(*s.store, rec, static_cast<int>(*t));
            });
          }};
}

Command add_start(CLI::App& app) {
  auto refs = std::make_shared<std::vector<std::string>>();
  auto* cmd = app.add_subcommand("start", "Boot stopped VMs again on their preserved disks");
  cmd->add_option("vm", *refs, "VM names or ids")->required();
  return {cmd, [refs]() -> int {
            return for_each_vm("start", *refs, [](Session& s, const state::VmRecord& rec) {
              return vm::start_vm(*s.ctx, *s.store, rec);
            });
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
