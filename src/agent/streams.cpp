// Streams: processes whose stdout/stderr go to the host as frames of one stream id, and whose
// status ends the stream with `exit`. Stream 0 is the main container's `podman run`; exec
// sessions (`podman exec`, or a process in the guest OS with in_vm; exec_sessions.cpp) use the
// host's ids >= 1. A tty exec has one output, the terminal, sent as stdout.
#include <poll.h>
#include <unistd.h>

#include <cerrno>

#include "agent/agent.hpp"
#include "agent/console.hpp"
#include "agent/logic/oci.hpp"
#include "fcvm/util/fs.hpp"

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
  // The main stream's stderr and a crun exec's output (on a terminal all of it comes as
  // stdout) are kept for errors: what crun says when the process did not start.
  bool is_main = id == agent_proto::k_main_stream;
  if ((is_main && (which == 1 || it->second.proc->on_terminal())) || !it->second.pid_file.empty()) {
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
  int code = status.shell_code();
  if (!stream.pid_file.empty()) {
    // crun exec failed before the process ran (it writes the pid file once it runs): the exit
    // code podman gives, from the runtime's words as podman reads them.
    if (code != 0 && ::access(stream.pid_file.c_str(), F_OK) != 0) {
      code = crun_exec_failure_code(stream.err_tail);
    }
    (void)remove_all(stream.process_file);
    (void)remove_all(stream.pid_file);
  }
  m_channel.send_control(agent_proto::encode_exit({id, code}));
}

}  // namespace fcvm::agent
