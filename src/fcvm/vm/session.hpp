#pragma once
// AgentSession: the host side of one conversation with fc-agent, from hello to the container's
// exit. It answers hello with the plan, forwards output, records milestones, turns signals into
// a clean stop, and notices a VM that dies. It owns nothing but the channel; the caller owns the
// VMM and everything else.
#include <chrono>
#include <optional>
#include <string>

#include "fcvm/agent_proto/frame.hpp"
#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/util/result.hpp"
#include "fcvm/util/unique_fd.hpp"
#include "fcvm/vm/timings.hpp"
#include "fcvm/vmm/backend.hpp"

namespace fcvm::vm {

struct SessionIo {
  int out_fd = 1;          // container stdout goes here (-1: nowhere)
  int err_fd = 2;          // container stderr
  int log_fd = -1;         // every output byte is also appended here (the VM's container.log)
  int signal_fd = -1;      // signalfd for SIGINT/SIGTERM/SIGHUP (-1: none)
  std::string console_log; // for error messages about a guest that never answered
};

struct SessionResult {
  std::optional<int> exit_code;  // the container's
  bool interrupted = false;      // a signal asked us to stop
};

class AgentSession {
 public:
  AgentSession(vmm::Backend& backend, agent_proto::Plan plan, SessionIo io, Timings& timings)
      : m_backend(backend), m_plan(std::move(plan)), m_io(io), m_timings(timings) {}

  // Runs until the container exited and the VM powered off, the VM died, or a failure.
  Result<SessionResult> run(UniqueFd channel, std::chrono::milliseconds boot_timeout);

 private:
  Result<> on_frame(const agent_proto::Frame& frame);
  Result<> on_control(const nlohmann::json& msg);
  Result<> send_control(const std::string& payload);
  void on_signal();
  std::string console_tail() const;

  vmm::Backend& m_backend;
  agent_proto::Plan m_plan;
  SessionIo m_io;
  Timings& m_timings;
  UniqueFd m_channel;
  bool m_hello = false;
  bool m_stop_sent = false;
  int m_signals = 0;
  std::optional<int> m_exit_code;
  std::optional<Error> m_guest_error;
};

}  // namespace fcvm::vm
