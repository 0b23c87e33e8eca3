// The container stage and its end (an image pulled or loaded in the guest; a stored image runs
// under crun, crun_container.cpp): `podman run` on stream 0 with NOTIFY_SOCKET pointing at the
// agent's datagram socket. podman 4 itself sends "MAINPID=<conmon>\nREADY=1" there after the
// OCI runtime started the container when --sdnotify=conmon is given (libpod's start()); should
// that never arrive, `podman container inspect` is asked with backoff.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "agent/agent.hpp"
#include "agent/console.hpp"
#include "agent/logic/podman.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::agent {
namespace {
constexpr const char* k_notify_socket = "/run/fcvm-agent/notify.sock";
// READY=1 normally arrives within seconds; the probe is a fallback and each podman call costs
// 0.5-2 s of CPU under emulation, so it starts late and backs off.
constexpr int64_t k_first_probe_ms = 20'000;
constexpr int k_max_probe_interval_ms = 10'000;
// After `podman stop -t N`, podman run normally exits within N seconds; past N + this grace it is
// killed so that the VM powers off regardless.
constexpr int64_t k_stop_grace_ms = 30'000;

Result<UniqueFd> bind_notify_socket(const std::string& path) {
  FCVM_TRY(make_dirs(path.substr(0, path.rfind('/')), 0700));
  ::unlink(path.c_str());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return fail(ErrorCode::kInvalidInput, fmt::format("notify socket path too long: {}", path));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return fail_errno("socket AF_UNIX SOCK_DGRAM");
  // sockaddr_un is the concrete type behind the generic sockaddr the API takes.
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return fail_errno(fmt::format("bind {}", path));
  }
  return fd;
}
}  // namespace

void Agent::start_container(const std::string& image) {
  if (m_awaiting_host) {
    sayf("prepared from MMDS's plan: the container waits for the host's go");
    m_deferred_image = image;
    return;
  }
  if (runs_crun()) {
    start_crun_container();
    return;
  }
  auto socket_path = path(k_notify_socket);
  auto notify = bind_notify_socket(socket_path);
  if (!notify) {
    fail_plan("container", notify.error().to_string());
    return;
  }
  m_notify_fd = std::move(*notify);
  SpawnOptions options;
  options.argv = podman_run_argv(*m_plan, image);
  options.env = {"NOTIFY_SOCKET=" + socket_path};
  if (!start_main_stream(std::move(options))) return;
  m_phase = Phase::kStarting;
  m_probe_at_ms = uptime_ms() + k_first_probe_ms;
  m_probe_interval_ms = 2000;
}

bool Agent::start_main_stream(SpawnOptions options, const std::string& console_socket) {
  sayf("run: {}", [&] {
    std::string line;
    for (const auto& a : options.argv) line += (line.empty() ? "" : " ") + shell_quote(a);
    return line;
  }());
  // run -t: a terminal (crun's, handed over; or podman's, relayed by it); run -i: a stdin pipe.
  auto proc = !console_socket.empty()
                  ? PipedProcess::start_with_console_socket(std::move(options), console_socket,
                                                            k_console_handover_timeout)
              : m_plan->tty ? PipedProcess::start_on_terminal(options, {m_plan->rows, m_plan->cols})
                            : PipedProcess::start(std::move(options), m_plan->stdin_open);
  if (!proc) {
    fail_plan("container", proc.error().to_string());
    return false;
  }
  if (!m_main_stdin.empty()) (*proc)->queue_stdin(m_main_stdin);
  if (m_main_stdin_eof) (*proc)->close_stdin();
  m_main_stdin.clear();
  Stream stream;
  stream.proc = std::move(*proc);
  stream.last_activity_ms = uptime_ms();
  m_streams.emplace(agent_proto::k_main_stream, std::move(stream));
  return true;
}

void Agent::on_notify() {
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(m_notify_fd.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;  // EAGAIN: drained
    std::string_view datagram(buf, static_cast<size_t>(n));
    if (notify_says_ready(datagram)) container_started("READY=1 from podman");
  }
}

void Agent::container_started(const std::string& how) {
  if (m_ready || (m_phase != Phase::kStarting && m_phase != Phase::kStopping)) return;
  m_ready = true;
  m_probe_at_ms = 0;
  sayf("container started ({})", how);
  send_event("container_started", how);
  if (m_phase == Phase::kStarting) {
    m_phase = Phase::kRunning;
    m_channel.send_control(agent_proto::encode_ready());
    sayf("ready sent");
  }
  if (m_stop_after_ready) stop_container();
}

void Agent::schedule_running_probe() {
  m_probe_running = true;
  run_helper(
      "podman inspect", podman_running_argv(),
      [this](CommandOutput out) {
        m_probe_running = false;
        if (out.status.exited && out.status.code == 0 && trim(out.out) == "true") {
          container_started("podman inspect: running");
          return;
        }
        m_probe_at_ms = uptime_ms() + m_probe_interval_ms;
        m_probe_interval_ms = std::min(m_probe_interval_ms * 2, k_max_probe_interval_ms);
      },
      60'000);
}

void Agent::handle_stop(int timeout_s, const std::string& why) {
  sayf("stop ({}), timeout {} s, state {}", why, timeout_s, state_name());
  switch (m_phase) {
    case Phase::kWaitingPlan:
    case Phase::kPreparing:
      // Nothing runs yet: the plan ends here, reported like a container killed by SIGTERM.
      send_log(fmt::format("stopped before the container started ({})", why));
      m_channel.send_control(agent_proto::encode_exit({agent_proto::k_main_stream, 128 + SIGTERM}));
      finish("stopped");
      return;
    case Phase::kStarting:
      // `podman stop` could run before the container exists: wait for it to start (or for
      // podman run to fail), but not longer than the stop deadline.
      m_phase = Phase::kStopping;
      m_stop_timeout_s = timeout_s;
      m_stop_after_ready = true;
      m_kill_at_ms = uptime_ms() + timeout_s * 1000LL + k_stop_grace_ms;
      send_log(fmt::format("stopping once the container has started ({})", why));
      return;
    case Phase::kRunning:
      m_phase = Phase::kStopping;
      m_stop_timeout_s = timeout_s;
      m_kill_at_ms = uptime_ms() + timeout_s * 1000LL + k_stop_grace_ms;
      send_log(fmt::format("stopping the container ({})", why));
      stop_container();
      return;
    case Phase::kStopping:
    case Phase::kDone:
      return;  // already on the way out
  }
}

void Agent::stop_container() {
  m_stop_after_ready = false;
  if (runs_crun()) {
    stop_crun_container();
    return;
  }
  auto argv = podman_stop_argv(m_stop_timeout_s);
  run_helper(
      "podman stop", argv,
      [this, argv](CommandOutput out) {
        if (!out.status.exited || out.status.code != 0) {
          // podman run's exit, or the kill deadline, still ends the plan.
          send_log(fmt::format("{} failed ({}): {}", join(argv, " "), out.status.describe(),
                               tail_lines(out.err, 2048)));
        }
      },
      m_stop_timeout_s * 1000LL + k_stop_grace_ms);
}

void Agent::signal_container(int sig) {
  if (m_phase != Phase::kRunning && m_phase != Phase::kStopping) {
    send_log(fmt::format("signal {}: the container is not running", sig));
    return;
  }
  if (runs_crun()) {
    sayf("signal {} to the container (pid {})", sig, m_container_pid);
    if (m_container_pid > 0 && ::kill(m_container_pid, sig) != 0 && errno != ESRCH) {
      send_log(fmt::format("signal {} to the container: {}", sig, std::strerror(errno)));
    }
    return;
  }
  auto argv = podman_kill_argv(sig);
  run_helper("podman kill", argv, [this, argv](CommandOutput out) {
    if (!out.status.exited || out.status.code != 0) {
      send_log(fmt::format("{} failed ({}): {}", join(argv, " "), out.status.describe(),
                           tail_lines(out.err, 2048)));
    }
  });
}

void Agent::main_exited(const Stream& stream, ExitStatus status) {
  m_notify_fd.reset();
  m_pid_watch.reset();
  m_kill_at_ms = 0;
  int code = status.shell_code();
  if (runs_crun()) {
    bool ran = crun_container_ran();
    m_container_pid = 0;
    // crun reports its own failures (a missing executable, a bad spec) before the process ran.
    if (!ran && code != 0) {
      fail_plan("container", fmt::format("crun run failed ({}): {}", status.describe(),
                                         tail_lines(stream.err_tail, 4096)));
      return;
    }
  }
  // podman's own failures (125: podman, 126: not executable, 127: not found) before the
  // container ever ran are a failed plan, with podman's stderr; anything else is the container's
  // exit status.
  if (!m_ready && m_phase == Phase::kStarting && code >= 125 && code <= 127) {
    fail_plan("container", fmt::format("podman run failed ({}): {}", status.describe(),
                                       tail_lines(stream.err_tail, 4096)));
    return;
  }
  sayf("container exited: {}", status.describe());
  m_channel.send_control(agent_proto::encode_exit({agent_proto::k_main_stream, code}));
  finish(fmt::format("the container exited with code {}", code));
}

}  // namespace fcvm::agent
