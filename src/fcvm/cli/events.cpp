// fcvm events [--json] [--since TIME] [--until TIME] [--filter K=V]... [--no-stream]
#include "fcvm/vm/events.hpp"

#include <fmt/format.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <memory>

#include "fcvm/cli/common.hpp"
#include "fcvm/cli/main.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fcvm::cli {
namespace {

struct EventsArgs {
  bool json = false;
  std::string since;
  std::string until;
  std::vector<std::string> filters;
  bool no_stream = false;
};

void print(const vm::Event& e, bool json) {
  std::string line;
  if (json) {
    auto j = vm::to_json(e);
    j["time"] = vm::rfc3339(e.time_ns);
    line = j.dump() + "\n";
  } else {
    std::string extra = fmt::format("id {}", e.vm_id.substr(0, 12));
    if (e.exit_code) extra += fmt::format(", exit code {}", *e.exit_code);
    if (!e.detail.empty()) extra += ", " + e.detail;
    line = fmt::format("{} {} {} ({})\n", vm::rfc3339(e.time_ns), vm::event_type_name(e.type),
                       e.vm_name, extra);
  }
  (void)write_all(1, line);
}

}  // namespace

Command add_events(CLI::App& app) {
  auto args = std::make_shared<EventsArgs>();
  auto* cmd = app.add_subcommand(
      "events", "Show VM events (created, running, exited, ...) as they happen, for every VM");
  cmd->footer(
      "Without --since, only events from now on; with --no-stream, the past events and no "
      "waiting. Events are kept in the data directory's events.log (rotated at 8 MiB).");
  cmd->add_flag("--json", args->json, "One JSON object a line");
  cmd->add_option("--since", args->since,
                  "Show events since TIME: RFC 3339, unix seconds, or a duration ago (10m, 2h)");
  cmd->add_option("--until", args->until, "Stop at TIME (same forms as --since)");
  cmd->add_option("-f,--filter", args->filters,
                  "Only events matching vm=NAME (name or id) or event=TYPE (repeatable; one "
                  "of each key must match)")
      ->allow_extra_args(false);
  cmd->add_flag("--no-stream", args->no_stream, "Print the events so far and exit");
  return {cmd, [args]() -> int {
            auto filters = vm::parse_event_filters(args->filters, "--filter");
            if (!filters) return report_error(filters.error().wrap("events"));
            std::optional<int64_t> since, until;
            if (!args->since.empty()) {
              auto t = vm::parse_event_time("--since", args->since);
              if (!t) return report_error(t.error().wrap("events"));
              since = *t;
            }
            if (!args->until.empty()) {
              auto t = vm::parse_event_time("--until", args->until);
              if (!t) return report_error(t.error().wrap("events"));
              until = *t;
            }
            Session s;
            if (auto r = open_session(s); !r) return report_error(r.error().wrap("events"));
            auto path = vm::journal_path(s.paths.data_dir);
            // One reader for the past and what follows: nothing is missed or shown twice.
            auto follower = vm::JournalFollower::open(path, since || args->no_stream);
            if (!follower) return report_error(follower.error().wrap("events"));
            for (bool first = true;; first = false) {
              if (until && vm::now_ns() > *until) return k_exit_ok;
              auto events = follower->next(first ? 0 : 1000);
              if (!events) return report_error(events.error().wrap("events"));
              for (const auto& e : *events) {
                if (until && e.time_ns > *until) return k_exit_ok;
                if ((!since || e.time_ns >= *since) && filters->match(e)) print(e, args->json);
              }
              if (first && args->no_stream) return k_exit_ok;
            }
          }};
}

}  // namespace fcvm::cli
