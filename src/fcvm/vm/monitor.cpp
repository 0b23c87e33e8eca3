#include "fcvm/vm/monitor.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include "fcvm/readiness/gate.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"
#include "fcvm/vm/lifecycle.hpp"
#include "fcvm/vm/monitor_impl.hpp"
#include "fcvm/vm/snapshot.hpp"
#include "fcvm/vmm/registry.hpp"

namespace fcvm::vm {

using namespace std::chrono_literals;
namespace proto = agent_proto;

std::string_view phase_name(Phase p) {
  switch (p) {
    case Phase::kSettingUp:
      return "setting-up";
    case Phase::kBooting:
      return "booting";
    case Phase::kStarting:
      return "starting";
    case Phase::kRunning:
      return "running";
    case Phase::kStopping:
      return "stopping";
    case Phase::kEnding:
      return "ending";
  }
  return "?";
}

Monitor::Monitor(Context& ctx, state::VmStore& store, state::VmRecord record, MonitorLaunch launch,
                 int ready_fd)
    : m_ctx(ctx),
      m_store(store),
      m_rec(std::move(record)),
      m_launch(std::move(launch)),
      m_ready_fd(ready_fd),
      m_timings(m_launch.timings_file),
      m_attach_deadline(Clock::now() + k_attach_timeout),
      m_console(m_rec.dir + "/console.log") {}

void Monitor::advance(Phase p) {
  if (p <= m_phase) return;
  FCVM_LOG(kDebug, "monitor", "phase {} -> {}", phase_name(m_phase), phase_name(p));
  m_phase = p;
}

void Monitor::publish(EventType type, std::string detail, std::optional<int> exit_code) {
  auto e = make_event(type, m_rec.id, m_rec.name, std::move(detail), exit_code);
  journal_append(journal_path(m_ctx.paths.data_dir), e);
  if (!m_control) return;
  auto encoded = control::encode(control::Message(e));
  for (auto& c : m_control->clients()) {
    if (c.subscriber) m_control->send(c, proto::Kind::kControl, 0, encoded);
  }
}

void Monitor::record_error(Error e) {
  if (!m_error) m_error = std::move(e);
  advance(Phase::kEnding);
}

std::string Monitor::console_tail() const {
  auto text = read_file(m_rec.dir + "/console.log");
  if (!text) return {};
  auto lines = split(trim(*text), '\n');
  std::string out;
  size_t first = lines.size() > 8 ? lines.size() - 8 : 0;
  for (size_t i = first; i < lines.size(); ++i) out += fmt::format("\n  {}", lines[i]);
  return out.empty() ? out
                     : fmt::format("\nlast console lines ({}/console.log):{}", m_rec.dir, out);
}

void Monitor::save() {
  if (auto r = m_store.update(m_rec); !r)
    FCVM_LOG(kError, "monitor", "save state: {}", r.error().to_string());
}

void Monitor::report_ready(const std::string& line) {
  if (line == "ok") m_ready = true;
  if (!m_ready_fd) return;
  (void)write_all(m_ready_fd.get(), line + "\n");
  m_ready_fd.reset();
}

// --- stopping --------------------------------------------------------------------------------

void Monitor::begin_stop(int timeout_s) {
  if (m_stop_deadline) return;
  FCVM_LOG(kInfo, "monitor", "stopping (timeout {} s)", timeout_s);
  if (m_paused) {
    // A paused guest cannot stop its container: it runs again first.
    if (auto r = m_vm->backend->resume(); !r) {
      FCVM_LOG(kWarn, "monitor", "resume before the stop: {}", r.error().to_string());
    }
    m_paused = false;
    publish(EventType::kUnpaused, "stop");
  }
  bool agent_up = m_hello && m_channel_open;
  advance(Phase::kStopping);
  m_rec.status = state::VmStatus::kStopping;
  save();
  publish(EventType::kStopping);
  if (agent_up) {
    send_agent(proto::encode_stop({timeout_s}));
    // The container gets SIGTERM, SIGKILL after timeout_s; then the guest powers off.
    m_stop_deadline = Clock::now() + std::chrono::seconds(timeout_s) + k_stop_margin;
  } else {
    // Still booting: there is no container to stop yet.
    m_vm->backend->kill();
    m_stop_deadline = Clock::now();
  }
}

void Monitor::on_signal() {
  auto signo = m_vm->signals.take();
  if (!signo) return;
  FCVM_LOG(kInfo, "monitor", "signal {}", *signo);
  m_stop_requested = true;
  if (m_stop_deadline) {
    m_vm->backend->kill();  // a second request: no more waiting
  } else {
    begin_stop(m_vm->options.stop_timeout_s);
  }
}

// --- the loop --------------------------------------------------------------------------------

// The VMM has exited: read what the guest said last, name the failure. True: the loop ends.
bool Monitor::end_of_vmm() {
  auto status = m_vm->backend->wait_exit(0ms);
  if (status && !*status) return false;
  // What the guest said last (its exit code) may still wait in the channel.
  while (m_channel_open && wait_readable(m_vm->channel.get(), 0ms).value_or(false)) {
    if (auto e = on_agent_bytes(); !e) {
      record_error(e.error());
      break;
    }
  }
  if (!m_exit_code && !m_error && !m_stop_deadline) {
    m_error = Error(
        ErrorCode::kSystem,
        fmt::format("the VM stopped before its container finished ({} {}){}", m_vm->backend->name(),
                    status ? (*status)->describe() : status.error().to_string(), console_tail()));
  }
  return true;
}

// A guest kernel that reports a hang before the container is ready: the boot fails unless the
// guest recovers (becomes ready) within k_hang_grace; a short lockup under load passes.
void Monitor::watch_console() {
  if (m_ready || m_stop_deadline || m_phase >= Phase::kEnding) return;
  if (!m_hang) {
    auto hang = m_console.poll();
    if (!hang) return;
    m_hang = *hang;
    m_hang_deadline = Clock::now() + k_hang_grace;
    FCVM_LOG(kWarn, "monitor",
             "guest kernel: {} (the boot fails in {} s unless the guest recovers)", *hang,
             k_hang_grace.count());
    return;
  }
  if (Clock::now() < m_hang_deadline) return;
  record_error(Error(ErrorCode::kSystem,
                     fmt::format("the guest kernel hung before the container was ready: {}{}",
                                 *m_hang, console_tail())));
  m_vm->backend->kill();
}

void Monitor::check_deadlines() {
  auto now = Clock::now();
  if (m_phase == Phase::kBooting && now > m_boot_deadline) {
    // A guest that never left its kernel (nothing of its init on the console): a hung boot,
    // booted once more when it was the first (retry_after_hang). Where its vCPUs were goes to
    // the log.
    std::string silent;
    if (!m_vm->restored && !m_console.reached_userspace()) {
      silent = " (its kernel never started the guest's init: nothing from it on the console)";
      for (const auto& line : m_vm->backend->vcpu_report()) {
        FCVM_LOG(kWarn, "monitor", "hung boot: {}", line);
      }
      if (!m_hang) {
        m_hang =
            fmt::format("no init after {} s, the console silent", m_vm->options.boot_timeout_s);
      }
    }
    record_error(Error(ErrorCode::kTimeout,
                       fmt::format("the guest agent did not answer within {} s{}{}",
                                   m_vm->options.boot_timeout_s, silent, console_tail())));
    m_vm->backend->kill();
    return;
  }
  // The time-to-live: a stop asked for (no restart), once.
  if (m_rec.expires_ms && state::now_ms() >= *m_rec.expires_ms && !m_stop_deadline &&
      !m_exit_code && !m_error) {
    FCVM_LOG(kInfo, "monitor", "time-to-live ended: stopping");
    m_rec.expires_ms.reset();
    m_stop_requested = true;
    publish(EventType::kExpired);
    if (!m_ready) {
      // Not ready yet: the start fails with the reason, as a boot that runs out of time does.
      record_error(
          Error(ErrorCode::kTimeout, "its time-to-live (--timeout) ended before it was ready"));
      m_vm->backend->kill();
      return;
    }
    begin_stop(m_vm->options.stop_timeout_s);
    return;
  }
  if ((m_exit_code || m_error) && !m_poweroff_deadline) {
    advance(Phase::kEnding);
    m_poweroff_deadline = now + k_poweroff_timeout;
  }
  if ((m_poweroff_deadline && now > *m_poweroff_deadline) ||
      (m_stop_deadline && now > *m_stop_deadline)) {
    FCVM_LOG(kWarn, "monitor", "the guest did not power off in time: stopping the VMM");
    (void)m_vm->backend->shutdown();
  }
}

void Monitor::loop() {
  m_boot_deadline = Clock::now() + std::chrono::seconds(m_vm->options.boot_timeout_s);
  advance(Phase::kBooting);
  for (;;) {
    // Clients that went away: an exec loses its process, an attached foreground run its VM.
    m_control->reap([this](ControlConnection& c) { on_client_gone(c); });
    if (end_of_vmm()) return;
    connect_channel();
    maybe_send_plan();  // the attach deadline may have passed
    watch_console();
    gate_tick();
    check_volume_servers();
    check_deadlines();
    std::vector<pollfd> fds;
    fds.push_back({m_channel_open ? m_vm->channel.get() : -1, POLLIN, 0});
    fds.push_back({m_vm->signals.fd(), POLLIN, 0});
    m_control->poll_fds(fds);
    int r = ::poll(fds.data(), fds.size(), 100);
    if (r <= 0) continue;
    if (fds[0].revents) {
      if (auto e = on_agent_bytes(); !e) {
        record_error(e.error());
        m_vm->backend->kill();
      }
    }
    if (fds[1].revents & POLLIN) on_signal();
    m_control->on_poll(
        fds, [this](ControlConnection& c, const proto::Frame& f) { on_client_frame(c, f); });
  }
}

void Monitor::teardown() {
  if (m_vm) {
    m_vm->backend->kill();
    m_vm->network.reset();
    write_back_volumes();
  }
  if (m_log) m_log->flush();
  remove_runtime_files(m_rec);
  ::unlink(memory_file_path(m_rec).c_str());
  m_rec.status = state::VmStatus::kExited;
  m_rec.finished_ms = state::now_ms();
  m_rec.exit_code = m_exit_code ? std::optional<int64_t>(*m_exit_code) : std::nullopt;
  m_rec.error = m_error ? m_error->to_string() : std::string();
  m_rec.monitor = {};
  m_rec.vmm = {};
  m_rec.helper = {};
  publish(EventType::kExited, m_error ? m_error->to_string() : std::string(), m_exit_code);
  // Attached clients learn the end before the record may disappear.
  if (m_control) {
    for (auto& c : m_control->clients()) {
      if (!c.attach) continue;
      if (m_exit_code) {
        reply(c, control::Exited{*m_exit_code});
      } else {
        reply(c,
              control::Failure{m_error ? *m_error : Error(ErrorCode::kSystem, "the VM stopped")});
      }
    }
    m_control->flush(2s);
    for (const auto& c : m_control->clients()) log_dropped_output(c);
  }
  bool never_ran = !m_ready;
  // A VM that never got to run its container on its first start leaves nothing behind; one that
  // asked to be removed when it ends goes too. Before the starting command hears of the failure:
  // when `run -d` returns, nothing of the VM is left.
  if (m_rec.auto_remove || (m_launch.fresh && never_ran)) {
    (void)remove_all(m_rec.dir);
    (void)m_store.remove(m_rec.id);
    publish(EventType::kRemoved);
  } else {
    save();
  }
  if (never_ran)
    report_ready("error: " + (m_error ? m_error->to_string() : "stopped during start-up"));
  m_control.reset();
}

int Monitor::run() {
  m_timings.mark("monitor_started");
  publish(EventType::kStarting);
  // The control socket comes first: a foreground `run` attaches while the VM boots.
  auto control = ControlServer::listen(m_rec.dir + "/control.sock");
  if (!control) {
    record_error(control.error());
  } else {
    m_control.emplace(std::move(*control));
    m_log_fd.reset(::open((m_rec.dir + "/container.log").c_str(),
                          O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!m_log_fd) record_error(Error(ErrorCode::kSystem, "open container.log", errno));
    m_log = std::make_unique<ContainerLogWriter>(m_log_fd.get());
  }
  // A clone's first start restores its snapshot; later starts boot its own disk.
  if (!m_error && !m_rec.snapshot.empty() && m_launch.fresh) {
    auto snap = state::SnapshotStore(m_store.db()).get(m_rec.snapshot);
    if (!snap || !*snap || (**snap).status != state::SnapshotStatus::kComplete) {
      record_error(Error(ErrorCode::kNotFound, "the snapshot of this clone is gone"));
    } else {
      m_restore_from = **snap;
    }
  }
  while (!m_error) {
    boot_and_run();
    if (!retry_after_hang()) break;
  }
  m_timings.mark("vm_ended");
  teardown();
  return 0;
}

RunOutcome Monitor::outcome() const {
  RunOutcome o;
  o.exit_code = m_exit_code;
  o.stop_requested = m_stop_requested;
  o.ran = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - m_started_at);
  return o;
}

void Monitor::abort(Error why) {
  record_error(std::move(why));
  try {
    teardown();
  } catch (const std::exception& e) {
    // The last resort: the VMM and helpers die with this process (PDEATHSIG), and the next
    // `ls` or `rm` reconciles the record.
    FCVM_LOG(kError, "monitor", "teardown failed: {}", e.what());
  }
}

}  // namespace fcvm::vm
