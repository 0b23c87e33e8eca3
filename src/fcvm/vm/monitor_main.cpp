// The monitor process: its argv (built by spawn_monitor, parsed here) and its main.
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>

#include "fcvm/util/log.hpp"
#include "fcvm/util/signal_fd.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"
#include "fcvm/vm/lifecycle.hpp"
#include "fcvm/vm/monitor.hpp"
#include "fcvm/vm/monitor_impl.hpp"
#include "fcvm/vm/restart.hpp"

namespace fcvm::vm {

std::vector<std::string> monitor_args(const MonitorLaunch& l, int ready_fd) {
  std::vector<std::string> args = {k_monitor_command,        l.id,         "--ready-fd",
                                   std::to_string(ready_fd), "--data-dir", l.data_dir};
  if (!l.guest_dir.empty()) args.insert(args.end(), {"--guest-dir", l.guest_dir});
  if (!l.cache_dir.empty()) args.insert(args.end(), {"--cache-dir", l.cache_dir});
  if (l.fresh) args.push_back("--fresh");
  if (l.wait_attach) args.push_back("--wait-attach");
  if (l.hold) args.push_back("--hold");
  if (!l.accel.empty()) args.insert(args.end(), {"--accel", l.accel});
  if (!l.firecracker_bin.empty()) args.insert(args.end(), {"--firecracker-bin", l.firecracker_bin});
  if (!l.jailer_bin.empty()) args.insert(args.end(), {"--jailer-bin", l.jailer_bin});
  if (l.t0_ns > 0) args.insert(args.end(), {"--t0-ns", std::to_string(l.t0_ns)});
  if (!l.timings_file.empty()) args.insert(args.end(), {"--timings", l.timings_file});
  if (!l.log_level.empty()) args.insert(args.end(), {"--log-level", l.log_level});
  return args;
}

namespace {

Result<std::pair<MonitorLaunch, int>> parse_monitor_args(int argc, char** argv) {
  auto bad = [](const std::string& what) {
    return fail(ErrorCode::kInvalidInput, fmt::format("monitor: {}", what));
  };
  if (argc < 3 || std::string(argv[1]) != k_monitor_command) return bad("usage: __monitor ID ...");
  MonitorLaunch l;
  int ready_fd = -1;
  l.id = argv[2];
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> Result<std::string> {
      if (i + 1 >= argc) return bad(a + " needs a value");
      return std::string(argv[++i]);
    };
    if (a == "--fresh") {
      l.fresh = true;
    } else if (a == "--wait-attach") {
      l.wait_attach = true;
    } else if (a == "--hold") {
      l.hold = true;
    } else if (a == "--ready-fd") {
      FCVM_TRY_ASSIGN(auto v, value());
      auto fd = parse_int(v, 0, 1 << 20);
      if (!fd) return bad("--ready-fd " + v);
      ready_fd = static_cast<int>(*fd);
    } else if (a == "--data-dir") {
      FCVM_TRY_ASSIGN(l.data_dir, value());
    } else if (a == "--guest-dir") {
      FCVM_TRY_ASSIGN(l.guest_dir, value());
    } else if (a == "--cache-dir") {
      FCVM_TRY_ASSIGN(l.cache_dir, value());
    } else if (a == "--t0-ns") {
      FCVM_TRY_ASSIGN(auto v, value());
      auto ns = parse_int(v, 0, INT64_MAX);
      if (!ns) return bad("--t0-ns " + v);
      l.t0_ns = *ns;
    } else if (a == "--accel") {
      FCVM_TRY_ASSIGN(l.accel, value());
    } else if (a == "--firecracker-bin") {
      FCVM_TRY_ASSIGN(l.firecracker_bin, value());
    } else if (a == "--jailer-bin") {
      FCVM_TRY_ASSIGN(l.jailer_bin, value());
    } else if (a == "--timings") {
      FCVM_TRY_ASSIGN(l.timings_file, value());
    } else if (a == "--log-level") {
      FCVM_TRY_ASSIGN(l.log_level, value());
    } else {
      return bad("unknown argument " + a);
    }
  }
  if (l.data_dir.empty()) return bad("--data-dir is required");
  return std::pair<MonitorLaunch, int>(std::move(l), ready_fd);
}

// One run of the VM: boot, the container, teardown.
int run_monitor(Context& ctx, state::VmStore& store, state::VmRecord rec,
                const MonitorLaunch& launch, int ready_fd, RunOutcome& outcome) {
  Monitor monitor(ctx, store, std::move(rec), launch, ready_fd);
  try {
    int code = monitor.run();
    outcome = monitor.outcome();
    return code;
  } catch (const std::exception& e) {
    // Our code does not throw; a library that did must still not leave the VM behind.
    FCVM_LOG(kError, "monitor", "uncaught exception: {}", e.what());
    monitor.abort(
        Error(ErrorCode::kInternal, fmt::format("internal error in the VM monitor: {}", e.what())));
    outcome = {};
    outcome.stop_requested = true;  // not restarted: the same would happen again
    return 1;
  }
}

RestartPolicy restart_policy_of(const state::VmRecord& rec) {
  auto options = options_from_json(rec.options_json);
  return options ? options->restart : RestartPolicy{};
}

}  // namespace

int monitor_main(int argc, char** argv) {
  mark_process_start();
  auto parsed = parse_monitor_args(argc, argv);
  if (!parsed) {
    fmt::print(stderr, "fcvm: error: {}\n", parsed.error().to_string());
    return 2;
  }
  auto [launch, ready_fd] = std::move(*parsed);
  // The command that started it may be gone when the ready line is written (it detached, or was
  // interrupted): a write error then, not the end of the VM. Its children get SIG_DFL back.
  ::signal(SIGPIPE, SIG_IGN);
  mark_process_start(launch.t0_ns);
  log::Level level = log::Level::kInfo;
  if (!launch.log_level.empty()) (void)log::parse_level(launch.log_level, level);
  log::set_level(level);
  auto tell = [fd = ready_fd](const std::string& line) {
    if (fd >= 0) (void)write_all(fd, line + "\n");
  };
  Paths paths;
  paths.data_dir = launch.data_dir;
  paths.guest_dir = launch.guest_dir.empty() ? launch.data_dir : launch.guest_dir;
  paths.cache_dir = launch.cache_dir;
  Context ctx{paths, sys::default_runner(), launch.accel, launch.firecracker_bin,
              launch.jailer_bin};
  auto store = open_store(ctx);
  if (!store) {
    tell("error: " + store.error().to_string());
    return 1;
  }
  auto rec = store->get(launch.id);
  if (!rec || !*rec) {
    tell(fmt::format("error: no VM with id {}", launch.id));
    return 1;
  }
  auto policy = restart_policy_of(**rec);
  if ((**rec).restart_count != 0) {
    // Started by hand: the restart policy's count begins again.
    (**rec).restart_count = 0;
    (void)store->update(**rec);
  }
  // Blocked for the whole life of this process: each run's monitor reads them while it runs; a
  // restart's back-off ends early on one (fcvm stop, rm -f).
  SignalFd signals({SIGTERM, SIGINT, SIGHUP});
  int quick_failures = 0;
  for (;;) {
    RunOutcome outcome;
    int code = run_monitor(ctx, *store, std::move(**rec), launch, ready_fd, outcome);
    ready_fd = -1;  // told once, by the first run
    auto current = store->get(launch.id);
    if (!current || !*current) return code;  // removed (or never kept)
    auto after = std::move(**current);
    if (!restart_due(policy, outcome, after.restart_count)) return code;
    quick_failures = outcome.ran < k_restart_reset ? quick_failures + 1 : 0;
    auto delay = restart_delay(quick_failures - 1);
    after.restart_count += 1;
    after.status = state::VmStatus::kRestarting;
    after.monitor = sys::ProcessIdentity::of(::getpid());
    if (auto saved = store->update(after); !saved) {
      FCVM_LOG(kError, "monitor", "record the restart: {}", saved.error().to_string());
      return code;
    }
    auto detail =
        fmt::format("{} #{} in {} ms", to_string(policy), after.restart_count, delay.count());
    FCVM_LOG(kInfo, "monitor", "restart policy {}", detail);
    journal_append(
        journal_path(ctx.paths.data_dir),
        make_event(EventType::kRestarting, after.id, after.name, detail,
                   after.exit_code ? std::optional<int>(static_cast<int>(*after.exit_code))
                                   : std::nullopt));
    if (wait_readable(signals.fd(), delay).value_or(false)) {
      FCVM_LOG(kInfo, "monitor", "signal {} during the restart back-off: not restarting",
               signals.take().value_or(0));
      after.status = state::VmStatus::kExited;
      after.monitor = {};
      (void)store->update(after);
      return code;
    }
    current = store->get(launch.id);
    if (!current || !*current || (**current).status != state::VmStatus::kRestarting) return code;
    rec = std::move(current);
    launch.fresh = false;
    launch.wait_attach = false;
    launch.hold = false;
  }
}

}  // namespace fcvm::vm
