// Streams: processes whose stdout/stderr go to the host as frames of one stream id, and whose
// status ends the stream with `exit`. Stream 0 is the main container's `podman run`; exec
// sessions (`podman exec`, or a process in the guest OS with in_vm) use the host's ids >= 1.
#include <poll.h>

#include <cerrno>

#include "agent/agent.hpp"
#include "agent/console.hpp"
#include "agent/logic/podman.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::agent {

using agent_proto::Kind;

namespace {
// The channel's queue length above which the agent stops reading output: the writers block on
// their pipes until the host has read (back-pressure instead of unbounded memory).
constexpr size_t k_output_high_water = 1 << 20;
// See helpers.cpp: how long after the process exited its pipes may stay open.
constexpr int64_t k_pipe_grace_ms = 2000;
constexpr int64_t k_backlog_grace_ms = 30'000;
constexpr size_t k_err_tail = 8192;
}  // namespace

void Agent::add_streams_to(PollSet& set) {
  bool room = m_channel.queued_bytes() < k_output_high_water;
  for (auto& [id, stream] : m_streams) {
    auto& proc = *stream.proc;
    for (int which = 0; which < 2 && room; ++which) {
      if (proc.output_fd(which) < 0) continue;
      set.add(proc.output_fd(which), POLLIN,
              [this, id = id, which](short) { pump_stream(id, which); });
    }
    if (proc.stdin_fd() >= 0 && proc.stdin_pending()) {
      set.add(proc.stdin_fd(), POLLOUT, [this, id = id](short) {
        if (auto it = m_streams.find(id); it != m_streams.end()) it->second.proc->write_stdin();
      });
    }
    if (proc.pidfd() >= 0) {
      set.add(proc.pidfd(), POLLIN, [this, id = id](short) {
        auto it = m_streams.find(id);
        if (it == m_streams.end()) return;
        it->second.proc->reap();
        it->second.last_activity_ms = it->second.exited_ms = uptime_ms();
      });
    }
  }
}

void Agent::pump_stream(uint32_t id, int which) {
  auto it = m_streams.find(id);
  if (it == m_streams.end()) return;
  auto data = it->second.proc->read_output(which, Channel::k_max_output_chunk);
  if (data.empty()) return;
  it->second.last_activity_ms = uptime_ms();
  if (which == 1 && id == agent_proto::k_main_stream) {
    it->second.err_tail += data;
    if (it->second.err_tail.size() > k_err_tail) {
      it->second.err_tail.erase(0, it->second.err_tail.size() - k_err_tail);
    }
  }
  m_channel.send(which == 0 ? Kind::kStdout : Kind::kStderr, id, data);
}

void Agent::reap_streams() {
  int64_t now = uptime_ms();
  bool room = m_channel.queued_bytes() < k_output_high_water;
  std::vector<std::pair<uint32_t, Stream>> ended;
  for (auto it = m_streams.begin(); it != m_streams.end();) {
    auto& proc = *it->second.proc;
    // Output still in the pipes is forwarded first; a pipe kept open by a grandchild (conmon
    // inherits podman's stdio) is given up after a grace period without output. Output held back
    // because no host reads is given up after a longer one: the VM must still power off.
    bool drained = proc.outputs_closed() ||
                   (room && now - it->second.last_activity_ms >= k_pipe_grace_ms) ||
                   (proc.exited() && now - it->second.exited_ms >= k_backlog_grace_ms);
    if (proc.exited() && drained) {
      proc.close_outputs();
      ended.emplace_back(it->first, std::move(it->second));
      it = m_streams.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [id, stream] : ended) on_stream_exit(id, stream, *stream.proc->status());
}

void Agent::on_stream_exit(uint32_t id, const Stream& stream, ExitStatus status) {
  if (id == agent_proto::k_main_stream) {
    main_exited(stream, status);
    return;
  }
  sayf("exec stream {}: {}", id, status.describe());
  m_channel.send_control(agent_proto::encode_exit({id, status.shell_code()}));
}

void Agent::refuse_exec(uint32_t stream, int code, const std::string& why) {
  sayf("exec stream {}: {}", stream, why);
  m_channel.send(Kind::kStderr, stream, fmt::format("fc-agent: {}\n", why));
  m_channel.send_control(agent_proto::encode_exit({stream, code}));
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
    refuse_exec(exec->stream, 125, "exec: the VM is powering off");
    return;
  }
  SpawnOptions options;
  if (exec->in_vm) {
    auto argv = in_vm_argv(*exec);
    if (!argv) {
      refuse_exec(exec->stream, 125, "exec: " + argv.error().message());
      return;
    }
    options.argv = std::move(*argv);
    options.env = exec->env;
    options.cwd = exec->workdir;
  } else {
    if (m_phase != Phase::kRunning) {
      refuse_exec(exec->stream, 125, "exec: the container is not running");
      return;
    }
    options.argv = podman_exec_argv(*exec);
  }
  // Its own session: a signal meant for the exec's process group never reaches the agent.
  options.new_session = true;
  auto proc = PipedProcess::start(std::move(options), true);
  if (!proc) {
    // The shell's convention: 127 command not found, 126 found but not startable.
    bool not_found =
        proc.error().code() == ErrorCode::kUnavailable || proc.error().sys_errno() == ENOENT;
    int code = not_found ? 127 : 126;
    refuse_exec(exec->stream, code, "exec: " + proc.error().to_string());
    return;
  }
  sayf("exec stream {}: pid {}: {}", exec->stream, (*proc)->pid(), join(exec->argv, " "));
  Stream stream;
  stream.proc = std::move(*proc);
  stream.last_activity_ms = uptime_ms();
  m_streams.emplace(exec->stream, std::move(stream));
}

}  // namespace fcvm::agent
