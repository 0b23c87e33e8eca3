// Exec sessions: a process on its own stream, started by an `exec` message, steered by `stdin`,
// `stdin_eof`, `resize` and `signal`, ended by `exit` (streams.cpp forwards its output).
//
//   container  `podman exec -i [-t] ... fcvm-main ARGV`, only while the container runs; for a
//              stored image's container `crun exec --process FILE --pid-file FILE fcvm-main`
//              (a tty exec gets a terminal of the container's own, relayed by crun).
//   in_vm      ARGV in the guest OS (setpriv for a UID[:GID] user).
//   tty        the process leads a new session on a pseudo-terminal (terminal.hpp); without tty
//              stdin, stdout and stderr are pipes.
//
// Signals. An in_vm exec leads its own session: a signal goes to its process group, or on a
// terminal to the foreground job, like ^C would. podman 4 does not forward signals to what
// `podman exec` started (podman issue 19486: killing podman exec leaves the process running), so
// the agent finds that process itself: `podman exec` runs with LC_FCVM_EXEC=<mark> in its
// environment, podman hands LC_* variables to the exec session's conmon only, and conmon's -p
// option names the file where the OCI runtime wrote the process's pid. The process does not lead
// a process group (the OCI runtime leaves it in conmon's), so the signal goes to it and to its
// descendants, the job a ^C would reach: a shell killed alone would leave its children holding
// the session's output open. When the process is not found (it has not started yet, another
// podman), podman exec itself is signalled and the process may outlive it in the container.
// crun exec writes the pid itself (--pid-file) and forwards signals to that process alone; the
// agent signals the process and its descendants the same way.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/agent.hpp"
#include "agent/console.hpp"
#include "agent/logic/exec.hpp"
#include "agent/logic/podman.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::agent {
namespace {

std::vector<pid_t> list_processes() {
  std::vector<pid_t> pids;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir("/proc"), ::closedir);
  if (!dir) return pids;
  while (dirent* d = ::readdir(dir.get())) {
    if (auto pid = parse_int(d->d_name, 1, INT32_MAX)) pids.push_back(static_cast<pid_t>(*pid));
  }
  return pids;
}

std::optional<pid_t> parent_of(pid_t pid) {
  auto stat = read_file(fmt::format("/proc/{}/stat", pid));
  return stat ? stat_parent(*stat) : std::nullopt;
}

// The pid of the process a container exec started (see the top of this file), if it runs.
std::optional<pid_t> find_exec_process(const std::string& mark) {
  const std::string entry = fmt::format("{}={}", k_exec_mark_variable, mark);
  for (pid_t conmon : list_processes()) {
    auto base = fmt::format("/proc/{}/", conmon);
    auto comm = read_file(base + "comm");
    if (!comm || trim(*comm) != "conmon") continue;
    auto env_text = read_file(base + "environ");
    if (!env_text || !environ_has(*env_text, entry)) continue;
    auto cmdline = read_file(base + "cmdline");
    auto pid_file = cmdline ? cmdline_option(*cmdline, "-p") : std::nullopt;
    auto pid_text = pid_file ? read_file(*pid_file) : fail(ErrorCode::kNotFound, "no -p");
    auto pid = pid_text ? parse_int(trim(*pid_text), 1, INT32_MAX) : std::nullopt;
    if (!pid) return std::nullopt;  // conmon found, the runtime has not written the pid yet
    // conmon is a subreaper: its exec'd process stays its child. A pid that is not is stale.
    if (parent_of(static_cast<pid_t>(*pid)) != conmon) return std::nullopt;
    return static_cast<pid_t>(*pid);
  }
  return std::nullopt;
}

// The process and its descendants as they are now (children started later are missed).
std::vector<pid_t> with_descendants(pid_t pid) {
  std::vector<std::pair<pid_t, pid_t>> parents;
  for (pid_t p : list_processes()) {
    if (auto parent = parent_of(p)) parents.emplace_back(p, *parent);
  }
  return process_tree(pid, parents);
}

}  // namespace

void Agent::refuse_exec(uint32_t stream, int code, const std::string& why) {
  sayf("exec stream {}: {}", stream, why);
  m_channel.send_control(agent_proto::encode_exec_error({stream, why}));
  m_channel.send_control(agent_proto::encode_exit({stream, code}));
}

std::string Agent::exec_unavailable() const {
  switch (m_phase) {
    case Phase::kWaitingPlan:
      return "the container is not running: the VM has no plan yet";
    case Phase::kPreparing:
    case Phase::kStarting:
      return "the container is not running yet: it is being prepared";
    case Phase::kRunning:
      return "";
    case Phase::kStopping:
      return "the container is not running: it is stopping";
    case Phase::kDone:
      return "the container is not running: the VM is powering off";
  }
  return "?";
}

void Agent::start_exec(const nlohmann::json& message) {
  auto exec = agent_proto::exec_from_json(message);
  if (!exec) {
    uint32_t stream = 0;
    if (auto s = message.find("stream"); s != message.end() && s->is_number_unsigned()) {
      stream = s->get<uint32_t>();
    }
    if (stream == agent_proto::k_main_stream) {
      send_log(exec.error().message());
    } else {
      refuse_exec(stream, 125, exec.error().message());
    }
    return;
  }
  if (m_streams.count(exec->stream) != 0) {
    // Not refuse_exec: an exit on this id would end the session that already runs there.
    send_log(fmt::format("exec: stream {} is in use", exec->stream));
    return;
  }
  if (m_phase == Phase::kDone) {
    refuse_exec(exec->stream, 125, "the VM is powering off");
    return;
  }
  Stream stream;
  stream.in_vm = exec->in_vm;
  SpawnOptions options;
  if (exec->in_vm) {
    auto argv = in_vm_argv(*exec);
    if (!argv) {
      refuse_exec(exec->stream, 125, argv.error().message());
      return;
    }
    options.argv = std::move(*argv);
    options.env = in_vm_env(*exec);
    options.cwd = exec->workdir;
  } else {
    if (auto why = exec_unavailable(); !why.empty()) {
      refuse_exec(exec->stream, 125, why);
      return;
    }
    if (runs_crun()) {
      auto crun = crun_exec_options(*exec, stream);
      if (!crun) {
        refuse_exec(exec->stream, 125, crun.error().message());
        return;
      }
      options = std::move(*crun);
    } else {
      options.argv = podman_exec_argv(*exec);
      stream.mark = fmt::format("{}.{}", exec->stream, ++m_exec_serial);
      options.env = {fmt::format("{}={}", k_exec_mark_variable, stream.mark)};
    }
  }
  // Its own session: a signal meant for the exec's process group never reaches the agent.
  options.new_session = true;
  auto proc = !stream.console_socket.empty()
                  ? PipedProcess::start_with_console_socket(
                        std::move(options), stream.console_socket, k_console_handover_timeout)
              : exec->tty ? PipedProcess::start_on_terminal(options, {exec->rows, exec->cols})
                          : PipedProcess::start(std::move(options), true);
  if (!proc) {
    // The shell's convention: 127 command not found, 126 found but not startable.
    bool not_found =
        proc.error().code() == ErrorCode::kUnavailable || proc.error().sys_errno() == ENOENT;
    refuse_exec(exec->stream, not_found ? 127 : 126, proc.error().to_string());
    return;
  }
  sayf("exec stream {}: pid {}{}: {}", exec->stream, (*proc)->pid(), exec->tty ? " (tty)" : "",
       join(exec->argv, " "));
  stream.proc = std::move(*proc);
  stream.last_activity_ms = uptime_ms();
  m_streams.emplace(exec->stream, std::move(stream));
}

void Agent::resize_exec(const nlohmann::json& message) {
  auto resize = agent_proto::resize_from_json(message);
  if (!resize) {
    send_log(resize.error().message());
    return;
  }
  auto it = m_streams.find(resize->stream);
  // A resize that crosses the session's end is late, not wrong.
  if (it == m_streams.end() || it->second.proc->exited()) return;
  if (!it->second.proc->on_terminal()) {
    send_log(fmt::format("resize: stream {} has no terminal", resize->stream));
    return;
  }
  if (auto r = it->second.proc->resize({resize->rows, resize->cols}); !r) {
    send_log(fmt::format("resize stream {}: {}", resize->stream, r.error().to_string()));
  }
}

void Agent::signal_exec(const nlohmann::json& message) {
  auto request = agent_proto::signal_from_json(message);
  if (!request) {
    send_log(request.error().message());
    return;
  }
  auto number = signal_number(request->signal);
  if (!number) {
    send_log(fmt::format("signal: unknown signal '{}'", request->signal));
    return;
  }
  if (request->stream == agent_proto::k_main_stream) {
    signal_container(*number);
    return;
  }
  auto it = m_streams.find(request->stream);
  if (it == m_streams.end() || it->second.proc->exited()) return;  // ended: the signal is late
  const Stream& stream = it->second;
  if (stream.in_vm) {
    // The exec leads a session; while it is not reaped its pid (and group id) cannot be reused.
    pid_t foreground = stream.proc->foreground_group();
    pid_t group = foreground > 0 ? foreground : stream.proc->pid();
    sayf("exec stream {}: signal {} to process group {}", request->stream, *number, group);
    if (::kill(-group, *number) != 0 && errno != ESRCH) {
      send_log(fmt::format("signal {} to exec stream {}: {}", request->signal, request->stream,
                           std::strerror(errno)));
    }
    return;
  }
  auto pid = stream.pid_file.empty() ? find_exec_process(stream.mark) : crun_exec_pid(stream);
  if (!pid) {
    send_log(fmt::format(
        "signal {}: the process of exec stream {} was not found: signalling {}", request->signal,
        request->stream,
        stream.pid_file.empty() ? "podman exec, which does not forward it" : "crun exec"));
    (void)stream.proc->signal(*number);
    return;
  }
  auto tree = with_descendants(*pid);
  sayf("exec stream {}: signal {} to pid {} and {} descendants", request->stream, *number, *pid,
       tree.size() - 1);
  // Pids from /proc may be reused by the time they are signalled; the window is the few
  // microseconds of this loop, and every one of them belonged to the session just now.
  for (pid_t p : tree) {
    if (::kill(p, *number) != 0 && errno != ESRCH) {
      send_log(fmt::format("signal {} to pid {} of exec stream {}: {}", request->signal, p,
                           request->stream, std::strerror(errno)));
    }
  }
}

}  // namespace fcvm::agent
