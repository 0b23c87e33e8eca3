// Helpers: short-lived commands (podman load/pull/stop/inspect, dd) that the agent waits for
// without blocking its loop. Output is collected (the tail, when it is long) and handed to a
// continuation once the process has exited and its pipes are drained.
#include <poll.h>
#include <signal.h>

#include "agent/agent.hpp"
#include "agent/console.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::agent {
namespace {
constexpr size_t k_capture_limit = 256 * 1024;
// After the process exited, how long its pipes may stay open (held by a grandchild) before the
// agent stops waiting for end of file.
constexpr int64_t k_pipe_grace_ms = 2000;

void append_capped(std::string& to, const std::string& data) {
  to += data;
  if (to.size() > k_capture_limit) to.erase(0, to.size() - k_capture_limit);
}
}  // namespace

void Agent::run_helper(std::string what, std::vector<std::string> argv, HelperDone done,
                       int64_t timeout_ms, std::vector<std::string> env) {
  sayf("run: {}", [&] {
    std::string line;
    for (const auto& a : argv) line += (line.empty() ? "" : " ") + shell_quote(a);
    return line;
  }());
  SpawnOptions options;
  options.argv = std::move(argv);
  options.env = std::move(env);
  auto proc = PipedProcess::start(std::move(options), false);
  if (!proc) {
    // Report through the continuation, like any other failure of the command.
    CommandOutput failed;
    failed.status = ExitStatus{true, 127};
    failed.err = proc.error().to_string();
    done(std::move(failed));
    return;
  }
  Helper helper;
  helper.what = std::move(what);
  helper.proc = std::move(*proc);
  helper.done = std::move(done);
  if (timeout_ms > 0) helper.deadline_ms = uptime_ms() + timeout_ms;
  m_helpers.emplace(m_next_helper_id++, std::move(helper));
}

void Agent::add_helpers_to(PollSet& set) {
  for (auto& [id, helper] : m_helpers) {
    for (int which = 0; which < 2; ++which) {
      int fd = helper.proc->output_fd(which);
      if (fd < 0) continue;
      set.add(fd, POLLIN, [this, id = id, which](short) {
        auto it = m_helpers.find(id);
        if (it == m_helpers.end()) return;
        auto data = it->second.proc->read_output(which, 65536);
        append_capped(which == 0 ? it->second.out : it->second.err, data);
      });
    }
    if (helper.proc->pidfd() >= 0) {
      set.add(helper.proc->pidfd(), POLLIN, [this, id = id](short) {
        auto it = m_helpers.find(id);
        if (it == m_helpers.end()) return;
        it->second.proc->reap();
        if (it->second.proc->exited()) it->second.exited_ms = uptime_ms();
      });
    }
  }
}

void Agent::reap_helpers() {
  int64_t now = uptime_ms();
  std::vector<Helper> finished;
  for (auto it = m_helpers.begin(); it != m_helpers.end();) {
    Helper& h = it->second;
    if (!h.proc->exited() && h.deadline_ms > 0 && now >= h.deadline_ms && !h.timed_out) {
      h.timed_out = true;
      sayf("{}: timed out, killing pid {}", h.what, h.proc->pid());
      (void)h.proc->signal(SIGKILL);
    }
    bool drained =
        h.proc->outputs_closed() || (h.proc->exited() && now - h.exited_ms >= k_pipe_grace_ms);
    if (h.proc->exited() && drained) {
      finished.push_back(std::move(h));
      it = m_helpers.erase(it);
    } else {
      ++it;
    }
  }
  // Continuations run after the map is consistent: they may start helpers or end the plan.
  for (auto& h : finished) {
    CommandOutput out;
    out.status = *h.proc->status();
    out.out = std::move(h.out);
    out.err = std::move(h.err);
    if (h.timed_out) out.err += fmt::format("\n{} timed out", h.what);
    sayf("{}: {}", h.what, out.status.describe());
    h.done(std::move(out));
  }
}

void Agent::cancel_helpers() {
  for (auto& [id, h] : m_helpers) {
    if (!h.proc->exited()) sayf("{}: cancelled (pid {})", h.what, h.proc->pid());
  }
  // Destroying a PipedProcess kills and reaps its process.
  m_helpers.clear();
}

}  // namespace fcvm::agent
