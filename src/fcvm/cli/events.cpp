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

struct Filters {
  std::vector<std::string> vms;  // a name, an id or an id prefix
  std::vector<vm::EventType> types;
  bool match(const vm::Event& e) const {
    bool vm_ok = vms.empty();
    for (const auto& v : vms) {
      vm_ok = vm_ok || e.vm_name == v || (v.size() >= 3 && e.vm_id.rfind(v, 0) == 0);
    }
    bool type_ok = types.empty();
    for (auto t : types) type_ok = type_ok || e.type == t;
    return vm_ok && type_ok;
  }
};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// TIME: RFC 3339 (2026-12-03T10:00:00Z, seconds optional), unix seconds, or a duration before
// now (90s, 10m, 2h, 1d).
Result<int64_t> parse_time(const std::string& flag, const std::string& text) {
  auto bad = [&] {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid {} \"{}\": expected an RFC 3339 time "
                            "(2026-12-03T10:00:00Z), unix seconds, or a duration ago (10m, 2h)",
                            flag, text));
  };
  if (text.empty()) return bad();
  if (auto secs = parse_int(text, 0, INT64_MAX / 1'000'000'000)) return *secs * 1'000'000'000;
  char unit = text.back();
  int64_t scale = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400 : 0;
  if (scale != 0) {
    if (auto n = parse_int(text.substr(0, text.size() - 1), 0, 100LL * 365 * 86400)) {
      return now_ns() - *n * scale * 1'000'000'000;
    }
  }
  tm t{};
  const char* end = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &t);
  if (end == nullptr) {
    t = {};
    end = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M", &t);
  }
  if (end == nullptr || (std::string_view(end) != "Z" && std::string_view(end) != "")) {
    return bad();
  }
  return static_cast<int64_t>(::timegm(&t)) * 1'000'000'000;
}

Result<Filters> parse_filters(const std::vector<std::string>& specs) {
  Filters f;
  for (const auto& spec : specs) {
    auto eq = spec.find('=');
    auto key = spec.substr(0, eq);
    auto value = eq == std::string::npos ? std::string() : spec.substr(eq + 1);
    if (eq == std::string::npos || value.empty() || (key != "vm" && key != "event")) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("invalid --filter \"{}\": expected vm=NAME or event=TYPE", spec));
    }
    if (key == "vm") {
      f.vms.push_back(value);
      continue;
    }
    auto type = vm::event_type_from_name(value);
    if (!type) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("invalid --filter \"{}\": unknown event \"{}\" (created, starting, "
                              "running, ready, exec_started, exec_exited, stopping, exited, "
                              "removed, snapshot_created, clone_started, signalled, renamed, "
                              "paused, unpaused, restarting)",
                              spec, value));
    }
    f.types.push_back(*type);
  }
  return f;
}

std::string rfc3339(int64_t ns) {
  time_t secs = static_cast<time_t>(ns / 1'000'000'000);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &t);
  return fmt::format("{}.{:09d}Z", buf, ns % 1'000'000'000);
}

void print(const vm::Event& e, bool json) {
  std::string line;
  if (json) {
    auto j = vm::to_json(e);
    j["time"] = rfc3339(e.time_ns);
    line = j.dump() + "\n";
  } else {
    std::string extra = fmt::format("id {}", e.vm_id.substr(0, 12));
    if (e.exit_code) extra += fmt::format(", exit code {}", *e.exit_code);
    if (!e.detail.empty()) extra += ", " + e.detail;
    line = fmt::format("{} {} {} ({})\n", rfc3339(e.time_ns), vm::event_type_name(e.type),
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
            auto filters = parse_filters(args->filters);
            if (!filters) return report_error(filters.error().wrap("events"));
            std::optional<int64_t> since, until;
            if (!args->since.empty()) {
              auto t = parse_time("--since", args->since);
              if (!t) return report_error(t.error().wrap("events"));
              since = *t;
            }
            if (!args->until.empty()) {
              auto t = parse_time("--until", args->until);
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
              if (until && now_ns() > *until) return k_exit_ok;
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
