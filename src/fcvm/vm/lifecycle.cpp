#include "fcvm/vm/lifecycle.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <thread>

#include "fcvm/agent_proto/signals.hpp"
#include "fcvm/net/privileged.hpp"
#include "fcvm/sys/host.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"
#include "fcvm/vm/control_client.hpp"
#include "fcvm/vm/events.hpp"
#include "fcvm/vm/monitor.hpp"
#include "fcvm/vm/setup.hpp"
#include "fcvm/vm/timings.hpp"
#include "fcvm/vmm/registry.hpp"

namespace fcvm::vm {

using namespace std::chrono_literals;

namespace {
// Events of the commands themselves (the monitor publishes the rest): into the journal beside
// the store.
void publish(const state::VmStore& store, EventType type, const state::VmRecord& rec,
             std::string detail = {}) {
  auto slash = store.path().rfind('/');
  auto data_dir = slash == std::string::npos ? std::string(".") : store.path().substr(0, slash);
  journal_append(journal_path(data_dir), make_event(type, rec.id, rec.name, std::move(detail)));
}
}  // namespace

Result<state::VmStore> open_store(Context& ctx) {
  FCVM_TRY(make_dirs(ctx.paths.data_dir, 0700));
  FCVM_TRY(make_dirs(ctx.paths.vms_dir(), 0700));
  return state::VmStore::open(ctx.paths.data_dir + "/state.db");
}

bool is_active(const state::VmRecord& rec) {
  return rec.status == state::VmStatus::kStarting || rec.status == state::VmStatus::kRunning ||
         rec.status == state::VmStatus::kPaused || rec.status == state::VmStatus::kStopping ||
         rec.status == state::VmStatus::kRestarting;
}

Result<state::VmRecord> create_vm(Context& ctx, state::VmStore& store, const RunOptions& options,
                                  bool auto_remove, const std::string& snapshot) {
  state::VmRecord rec;
  rec.id = sys::random_hex(32);
  rec.name = options.name.empty() ? "vm-" + rec.id.substr(0, 8) : options.name;
  rec.image = options.image.original;
  rec.vcpus = options.vcpus;
  rec.mem_mib = options.mem_mib;
  std::vector<std::string> ports;
  for (const auto& p : options.ports) ports.push_back(p.to_string());
  rec.ports = join(ports, ",");
  rec.options_json = options_to_json(options);
  rec.dir = ctx.paths.vms_dir() + "/" + rec.id;
  rec.auto_remove = auto_remove;
  rec.created_ms = state::now_ms();
  if (options.ttl_s > 0) rec.expires_ms = rec.created_ms + options.ttl_s * 1000;
  rec.snapshot = snapshot;
  rec.image_id = options.image_id;
  if (::mkdir(rec.dir.c_str(), 0700) != 0) return fail_errno(fmt::format("create {}", rec.dir));
  auto inserted = store.insert(rec);
  if (!inserted) {
    (void)remove_all(rec.dir);
    return tl::unexpected<Error>(inserted.error());
  }
  publish(store, EventType::kCreated, rec, rec.image);
  return rec;
}

Result<MonitorProcess> spawn_monitor(Context& ctx, const state::VmRecord& rec,
                                     const SpawnMonitorOptions& options) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return fail_errno("pipe2");
  UniqueFd ready_r(p[0]), ready_w(p[1]);
  auto log_path = rec.dir + "/monitor.log";
  UniqueFd log_fd(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log_fd) return fail_errno(fmt::format("open {}", log_path));
  MonitorLaunch launch;
  launch.id = rec.id;
  launch.fresh = options.fresh;
  launch.wait_attach = options.wait_attach;
  launch.hold = options.hold;
  launch.timings_file = options.timings_file;
  // The monitor logs at least at info into monitor.log; a more verbose caller's level carries.
  launch.log_level = log::level() < log::Level::kInfo ? std::string(log::level_name(log::level()))
                                                      : std::string("info");
  // The monitor resolves nothing itself: it gets the directories we resolved (flags, config,
  // environment).
  launch.data_dir = ctx.paths.data_dir;
  launch.guest_dir = ctx.paths.guest_dir;
  launch.cache_dir = ctx.paths.cache_dir;
  launch.accel = ctx.accel;
  launch.firecracker_bin = ctx.firecracker_bin;
  launch.jailer_bin = ctx.jailer_bin;
  launch.t0_ns = process_start_ns();
  SpawnOptions opts;
  opts.argv = {"/proc/self/exe"};
  for (auto& a : monitor_args(launch, ready_w.get())) opts.argv.push_back(std::move(a));
  opts.keep_fds = {ready_w.get()};
  opts.stdout_fd = log_fd.get();
  opts.stderr_fd = log_fd.get();
  opts.new_session = true;       // Ctrl-C in the user's terminal does not reach it
  opts.die_with_parent = false;  // it outlives the command that started it
  auto child = ChildProcess::spawn(opts);
  if (!child) return tl::unexpected<Error>(std::move(child.error()).wrap("start the VM monitor"));
  return MonitorProcess{std::move(*child), std::move(ready_r)};
}

Result<> wait_ready(int ready_fd, const state::VmRecord& rec) {
  std::string line;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(ready_fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
    if (line.find('\n') != std::string::npos) break;
  }
  auto text = std::string(trim(line));
  if (text == "ok") return {};
  if (text.rfind("error: ", 0) == 0) return fail(ErrorCode::kSystem, text.substr(7));
  return fail(ErrorCode::kSystem,
              fmt::format("the VM monitor ended without a word (see {}/monitor.log)", rec.dir));
}

namespace {
// What a killed monitor's network left on the host (privileged mode: host rules, lease, veth;
// everything else dies with the namespace holder).
void release_network(const state::VmRecord& rec) {
  if (auto r = net::cleanup_privileged(rec.network_json, sys::default_runner()); !r) {
    FCVM_LOG(kWarn, "reconcile", "VM {}: network clean-up: {}", rec.name, r.error().to_string());
  }
  // Killed between taking its lease and recording its network: the lease book still says what
  // it holds (its namespace holder died with it).
  if (rec.network_json.empty()) {
    if (auto r = net::reclaim_stale_leases(sys::default_runner()); !r) {
      FCVM_LOG(kWarn, "reconcile", "VM {}: stale leases: {}", rec.name, r.error().to_string());
    }
  }
}
}  // namespace

Result<std::optional<state::VmRecord>> reconcile(state::VmStore& store, state::VmRecord rec) {
  if (!is_active(rec) || rec.monitor.alive()) return std::optional<state::VmRecord>(rec);
  FCVM_LOG(kInfo, "reconcile", "VM {}: its monitor is gone; cleaning up", rec.name);
  rec.vmm.kill_if_alive();
  rec.helper.kill_if_alive();
  release_network(rec);
  remove_runtime_files(rec);
  // A RAM file is unlinked as soon as QEMU runs; one killed before that may leave it.
  ::unlink(memory_file_path(rec).c_str());
  if (rec.auto_remove) {
    (void)remove_all(rec.dir);
    FCVM_TRY(store.remove(rec.id));
    publish(store, EventType::kRemoved, rec);
    return std::optional<state::VmRecord>{};
  }
  rec.status = state::VmStatus::kExited;
  if (!rec.finished_ms) rec.finished_ms = state::now_ms();
  if (rec.error.empty() && !rec.exit_code) rec.error = "the VM's monitor ended unexpectedly";
  rec.monitor = rec.vmm = rec.helper = {};
  FCVM_TRY(store.update(rec));
  publish(store, EventType::kExited, rec, rec.error);
  return std::optional<state::VmRecord>(rec);
}

void remove_runtime_files(const state::VmRecord& rec) {
  for (const auto& f : {"control.sock", "slirp.sock"}) ::unlink((rec.dir + "/" + f).c_str());
  vmm::remove_leftovers(rec.dir, rec.id);
}

Result<std::vector<state::VmRecord>> list_vms(state::VmStore& store) {
  auto all = store.list();
  if (!all) return tl::unexpected<Error>(all.error());
  std::vector<state::VmRecord> out;
  for (auto& rec : *all) {
    auto r = reconcile(store, std::move(rec));
    if (!r) return tl::unexpected<Error>(r.error());
    if (*r) out.push_back(std::move(**r));
  }
  return out;
}

namespace {
// Waits for the monitor to end; SIGKILL it after the timeout (its children die with it).
void wait_monitor_gone(const state::VmRecord& rec, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (rec.monitor.alive()) {
    if (std::chrono::steady_clock::now() > deadline) {
      FCVM_LOG(kWarn, "stop", "VM {}: the monitor did not end in time: killing it", rec.name);
      rec.monitor.kill_if_alive();
      std::this_thread::sleep_for(100ms);
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
}
}  // namespace

Result<> stop_vm(state::VmStore& store, const state::VmRecord& rec, int timeout_s) {
  auto current = reconcile(store, rec);
  if (!current) return tl::unexpected<Error>(current.error());
  if (!*current || !is_active(**current)) return {};
  auto client = ControlClient::connect(**current, 2s);
  if (client) {
    (void)client->send(control::Stop{timeout_s});
  } else {
    // No control socket yet (still booting) or a stuck monitor: the monitor's SIGTERM path.
    (**current).monitor.signal_if_alive(SIGTERM);
  }
  wait_monitor_gone(**current, std::chrono::seconds(timeout_s) + 40s);
  auto after = store.get(rec.id);
  if (after && *after) (void)reconcile(store, **after);
  return {};
}

Result<> start_vm(Context& ctx, state::VmStore& store, const state::VmRecord& rec) {
  FCVM_TRY_ASSIGN(auto monitor, begin_start(ctx, store, rec, false));
  monitor.process.detach();
  return wait_ready(monitor.ready.get(), rec);
}

Result<MonitorProcess> begin_start(Context& ctx, state::VmStore& store, const state::VmRecord& rec,
                                   bool wait_attach) {
  auto current = reconcile(store, rec);
  if (!current) return tl::unexpected<Error>(current.error());
  if (!*current) return fail(ErrorCode::kNotFound, fmt::format("VM {} is gone", rec.name));
  if ((**current).status == state::VmStatus::kRestarting) {
    return fail(
        ErrorCode::kInvalidInput,
        fmt::format("VM {} is restarting by its restart policy (fcvm stop ends that)", rec.name));
  }
  if (is_active(**current)) {
    return fail(ErrorCode::kInvalidInput, fmt::format("VM {} is already running", rec.name));
  }
  return spawn_monitor(ctx, **current, {false, wait_attach, {}});
}

Result<> remove_vm(state::VmStore& store, const state::VmRecord& rec, bool force) {
  auto current = reconcile(store, rec);
  if (!current) return tl::unexpected<Error>(current.error());
  if (!*current) return {};
  if (is_active(**current)) {
    if (!force) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("VM {} is running: stop it first, or use rm -f", rec.name));
    }
    auto client = ControlClient::connect(**current, 1s);
    if (client) (void)client->send(control::Kill{});
    (**current).monitor.signal_if_alive(SIGTERM);
    wait_monitor_gone(**current, 10s);
    (**current).vmm.kill_if_alive();
    (**current).helper.kill_if_alive();
    release_network(**current);  // the monitor may have been killed before its teardown
  }
  FCVM_TRY(remove_all(rec.dir));
  FCVM_TRY(store.remove(rec.id));
  publish(store, EventType::kRemoved, rec);
  return {};
}

Result<> restart_vm(Context& ctx, state::VmStore& store, const state::VmRecord& rec,
                    int timeout_s) {
  FCVM_TRY(stop_vm(store, rec, timeout_s));
  FCVM_TRY_ASSIGN(auto current, store.get(rec.id));
  if (!current) return fail(ErrorCode::kNotFound, fmt::format("VM {} is gone", rec.name));
  return start_vm(ctx, store, *current);
}

Result<> signal_container(state::VmStore& store, const state::VmRecord& rec,
                          const std::string& signal) {
  FCVM_TRY_ASSIGN(auto current, reconcile(store, rec));
  if (!current || !is_active(*current)) {
    return fail(ErrorCode::kInvalidInput, fmt::format("VM {} is not running", rec.name));
  }
  FCVM_TRY_ASSIGN(auto client, ControlClient::connect(*current, 5s));
  FCVM_TRY(client.call(control::ContainerSignal{signal}));
  return {};
}

Result<> pause_vm(state::VmStore& store, const state::VmRecord& rec, bool pause) {
  FCVM_TRY_ASSIGN(auto current, reconcile(store, rec));
  if (!current || !is_active(*current)) {
    return fail(ErrorCode::kInvalidInput, fmt::format("VM {} is not running", rec.name));
  }
  FCVM_TRY_ASSIGN(auto client, ControlClient::connect(*current, 5s));
  if (pause) {
    FCVM_TRY(client.call(control::Pause{}));
  } else {
    FCVM_TRY(client.call(control::Unpause{}));
  }
  return {};
}

Result<std::optional<int64_t>> wait_vm(state::VmStore& store, const state::VmRecord& rec) {
  for (;;) {
    FCVM_TRY_ASSIGN(auto found, store.get(rec.id));
    if (!found) {
      return fail(ErrorCode::kNotFound, fmt::format("VM {} was removed", rec.name));
    }
    FCVM_TRY_ASSIGN(auto current, reconcile(store, *found));
    if (!current) return fail(ErrorCode::kNotFound, fmt::format("VM {} was removed", rec.name));
    if (!is_active(*current)) return current->exit_code;
    // The monitor's end: its pidfd, opened and then checked to be that very process (a pid
    // reused before the open would fail the identity check).
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, current->monitor.pid, 0)));
    if (pidfd && current->monitor.alive()) {
      pollfd p{pidfd.get(), POLLIN, 0};
      while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
      }
    } else {
      // Starting (the monitor's identity is not recorded yet), or just gone: look again soon.
      std::this_thread::sleep_for(50ms);
    }
  }
}

Result<state::VmRecord> set_ttl(state::VmStore& store, const state::VmRecord& rec,
                                int64_t seconds) {
  int64_t at = seconds == 0 ? 0 : state::now_ms() + seconds * 1000;
  FCVM_TRY_ASSIGN(auto current, reconcile(store, rec));
  if (!current) return fail(ErrorCode::kNotFound, fmt::format("VM {} is gone", rec.name));
  if (is_active(*current)) {
    FCVM_TRY_ASSIGN(auto client, ControlClient::connect(*current));
    FCVM_TRY(client.call(control::SetExpiry{at}));
  } else {
    if (at == 0) {
      current->expires_ms.reset();
    } else {
      current->expires_ms = at;
    }
    FCVM_TRY(store.update(*current));
  }
  FCVM_TRY_ASSIGN(auto now, store.get(rec.id));
  if (!now) return fail(ErrorCode::kNotFound, fmt::format("VM {} is gone", rec.name));
  return *now;
}

Result<state::VmRecord> find_vm(state::VmStore& store, const std::string& ref) {
  FCVM_TRY_ASSIGN(auto rec, store.find(ref));
  FCVM_TRY_ASSIGN(auto current, reconcile(store, rec));
  if (!current) return fail(ErrorCode::kNotFound, fmt::format("no VM named \"{}\"", ref));
  return *current;
}

Error name_taken(const Error& error, const std::string& name) {
  if (error.code() != ErrorCode::kAlreadyExists) return error;
  return Error(ErrorCode::kAlreadyExists, fmt::format("the name \"{}\" is taken", name));
}

Result<state::VmRecord> rename_vm(state::VmStore& store, const state::VmRecord& rec,
                                  const std::string& name) {
  FCVM_TRY(validate_name(name));
  FCVM_TRY_ASSIGN(auto all, store.list());
  for (const auto& other : all) {
    if (other.name == name && other.id != rec.id) {
      return fail(ErrorCode::kAlreadyExists,
                  fmt::format("the name \"{}\" is taken by VM {}", name, other.id.substr(0, 12)));
    }
  }
  FCVM_TRY_ASSIGN(auto current, reconcile(store, rec));
  if (!current) return fail(ErrorCode::kNotFound, fmt::format("VM {} is gone", rec.name));
  if (is_active(*current)) {
    FCVM_TRY_ASSIGN(auto client, ControlClient::connect(*current, 5s));
    FCVM_TRY(client.call(control::Rename{name}));
    current->name = name;
    return *current;
  }
  auto old = current->name;
  current->name = name;
  if (auto saved = store.update(*current); !saved)
    return tl::unexpected(name_taken(saved.error(), name));
  publish(store, EventType::kRenamed, *current, old);
  return *current;
}

}  // namespace fcvm::vm
