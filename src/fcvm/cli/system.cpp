// fcvm system df [--json]   fcvm system prune [-f] [--json]
#include "fcvm/vm/system.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::cli {
namespace {

nlohmann::json use_json(const vm::SpaceUse& u) {
  return {{"total", u.total},
          {"active", u.active},
          {"bytes", u.bytes},
          {"reclaimable_bytes", u.reclaimable}};
}

int df(bool json) {
  Session s;
  if (auto r = open_session(s); !r) return report_error(r.error().wrap("system df"));
  auto df = vm::system_df(*s.ctx, *s.store);
  if (!df) return report_error(df.error().wrap("system df"));
  if (json) {
    fmt::print("{}\n", nlohmann::json{{"images", use_json(df->images)},
                                      {"vms", use_json(df->vms)},
                                      {"snapshots", use_json(df->snapshots)}}
                           .dump(2));
    return k_exit_ok;
  }
  std::string out = fmt::format("{:<12} {:>6} {:>7} {:>10} {:>12}\n", "TYPE", "TOTAL", "ACTIVE",
                                "SIZE", "RECLAIMABLE");
  for (const auto& [name, u] : {std::pair{"Images", df->images}, std::pair{"VMs", df->vms},
                                std::pair{"Snapshots", df->snapshots}}) {
    int pct = u.bytes > 0 ? static_cast<int>(u.reclaimable * 100 / u.bytes) : 0;
    out +=
        fmt::format("{:<12} {:>6} {:>7} {:>10} {:>12}\n", name, u.total, u.active,
                    human_size(u.bytes), fmt::format("{} ({}%)", human_size(u.reclaimable), pct));
  }
  fmt::print("{}", out);
  return k_exit_ok;
}

int prune(bool force, bool json) {
  if (!force) {
    fmt::print(stderr,
               "WARNING! This removes:\n"
               "  - every VM that is not running\n"
               "  - every snapshot no VM was cloned from\n"
               "  - every stored image no VM or snapshot uses\n"
               "Are you sure you want to continue? [y/N] ");
    std::string answer;
    if (!std::getline(std::cin, answer) || (answer != "y" && answer != "Y" && answer != "yes")) {
      fmt::print(stderr, "Nothing removed.\n");
      return k_exit_ok;
    }
  }
  Session s;
  if (auto r = open_session(s); !r) return report_error(r.error().wrap("system prune"));
  auto report = vm::system_prune(*s.ctx, *s.store);
  if (json) {
    fmt::print("{}\n", nlohmann::json{{"vms", report.vms},
                                      {"snapshots", report.snapshots},
                                      {"images", report.images},
                                      {"reclaimed_bytes", report.reclaimed}}
                           .dump(2));
  } else {
    for (const auto& [what, names] :
         {std::pair{"VMs", &report.vms}, std::pair{"snapshots", &report.snapshots},
          std::pair{"images", &report.images}}) {
      if (names->empty()) continue;
      fmt::print("Deleted {}:\n", what);
      for (const auto& n : *names) fmt::print("{}\n", n);
    }
    fmt::print("Total reclaimed space: {}\n", human_size(report.reclaimed));
  }
  int rc = k_exit_ok;
  for (const auto& e : report.errors) rc = std::max(rc, report_error(e.wrap("system prune")));
  return rc;
}

}  // namespace

Command add_system(CLI::App& app) {
  struct Args {
    bool json = false;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("system", "Manage the data directory: df, prune");
  cmd->require_subcommand(1);
  auto* df_cmd = cmd->add_subcommand(
      "df", "Space used by stored images, VMs and snapshots, and what prune would free");
  df_cmd->add_flag("--json", args->json, "Print JSON");
  auto* prune_cmd = cmd->add_subcommand(
      "prune",
      "Remove VMs that do not run, snapshots no VM was cloned from and images nothing uses "
      "(asks first unless -f)");
  prune_cmd->add_flag("-f,--force", args->force, "Do not ask for confirmation");
  prune_cmd->add_flag("--json", args->json, "Print what was removed as JSON");
  return {cmd, [=]() -> int {
            if (df_cmd->parsed()) return df(args->json);
            return prune(args->force, args->json);
          }};
}

}  // namespace fcvm::cli
