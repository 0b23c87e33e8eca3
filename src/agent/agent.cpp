#include "agent/agent.hpp"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "agent/console.hpp"
#include "agent/logic/podman.hpp"

namespace fcvm::agent {

using agent_proto::Kind;

namespace {
// How long the agent keeps trying to hand the host its last message before powering off anyway
// (the host may be gone for good).
constexpr int64_t k_answer_grace_ms = 10'000;
}  // namespace

Agent::Agent(AgentOptions options) : m_options(std::move(options)), m_channel(m_options.channel) {
  // SIGTERM/SIGINT (catatonit forwards what PID 1 gets, e.g. ctrl-alt-del) stop the container
  // like a host `stop`; they are read from a signalfd in the loop (m_signals blocks them).
  if (!m_signals.valid()) sayf("signalfd: {} (SIGTERM will kill the agent)", std::strerror(errno));
}

Agent::~Agent() = default;

Result<std::string> Agent::run() {
  sayf("fc-agent {} starting, channel {}", FCVM_VERSION, describe(m_options.channel));
  if (m_options.mmds) {
    auto plan = read_mmds_plan();
    if (plan) {
      sayf("plan from MMDS: vm {} ({}); the container starts on the host's go", plan->vm_id,
           plan->name);
      m_plan = std::move(*plan);
      m_awaiting_host = true;
      start_plan();
    } else {
      sayf("no plan from MMDS ({}): waiting for the host's", plan.error().to_string());
    }
  }
  for (;;) {
    m_channel.tick();
    handle_channel_events();
    reap_helpers();
    reap_streams();
    check_deadlines();
    check_volumes();
    if (m_phase == Phase::kDone) {
      if (m_channel.flushed()) {
        finish_volumes();
        return m_finish_reason;
      }
      if (uptime_ms() >= m_power_off_at_ms) {
        sayf("the host did not take the last {} bytes in time", m_channel.queued_bytes());
        finish_volumes();
        return m_finish_reason;
      }
    }
    PollSet set;
    build_poll_set(set);
    int timeout = m_channel.wait_hint_ms();
    // Deadlines (helpers, stop, power-off, readiness probe, stream exits) are checked at this
    // granularity; a few wake-ups per second cost nothing even under emulation.
    bool timed = m_phase == Phase::kStarting || m_phase == Phase::kStopping ||
                 !m_pending_image.empty() || m_phase == Phase::kDone || !m_helpers.empty() ||
                 std::any_of(m_streams.begin(), m_streams.end(),
                             [](const auto& s) { return s.second.proc->exited(); });
    if (timed) timeout = timeout < 0 ? 100 : std::min(timeout, 100);
    FCVM_TRY_CTX(set.wait_and_dispatch(timeout), "agent loop");
  }
}

void Agent::build_poll_set(PollSet& set) {
  m_channel.add_to(set);
  if (m_signals.valid()) set.add(m_signals.fd(), POLLIN, [this](short) { on_signal(); });
  if (m_notify_fd) set.add(m_notify_fd.get(), POLLIN, [this](short) { on_notify(); });
  if (m_pid_watch) set.add(m_pid_watch.get(), POLLIN, [this](short) { on_pid_watch(); });
  add_helpers_to(set);
  add_streams_to(set);
}

void Agent::handle_channel_events() {
  for (auto& event : m_channel.take_events()) {
    switch (event.type) {
      case ChannelEvent::Type::kConnected:
        on_connected();
        break;
      case ChannelEvent::Type::kDisconnected:
        // Nothing to undo: queued frames wait for the next host, which starts with a hello.
        break;
      case ChannelEvent::Type::kFrame:
        on_frame(std::move(event.frame));
        break;
    }
  }
}

void Agent::on_connected() { send_hello(); }

void Agent::send_hello() {
  agent_proto::Hello hello;
  hello.version = agent_proto::k_protocol_version;
  hello.agent = std::string("fc-agent ") + FCVM_VERSION;
  hello.uptime_ms = uptime_ms();
  hello.state = state_name();
  m_channel.send_control_first(agent_proto::encode_hello(hello));
  sayf("hello sent (state {})", hello.state);
}

const char* Agent::state_name() const {
  switch (m_phase) {
    case Phase::kWaitingPlan:
      return agent_proto::k_state_waiting_plan;
    case Phase::kPreparing:
    case Phase::kStarting:
      return agent_proto::k_state_preparing;
    case Phase::kRunning:
      return agent_proto::k_state_running;
    case Phase::kStopping:
    case Phase::kDone:
      return agent_proto::k_state_stopping;
  }
  return "?";
}

void Agent::on_frame(agent_proto::Frame&& frame) {
  switch (frame.kind) {
    case Kind::kControl:
      on_control(frame.payload);
      return;
    case Kind::kStdin:
    case Kind::kStdinEof: {
      auto it = m_streams.find(frame.stream);
      if (frame.stream == agent_proto::k_main_stream) {
        // run -i: the container's input; kept until the container's process exists.
        if (!m_plan || !m_plan->stdin_open) return;
        if (it == m_streams.end()) {
          if (frame.kind == Kind::kStdin) {
            m_main_stdin += frame.payload;
          } else {
            m_main_stdin_eof = true;
          }
          return;
        }
      }
      // Input for an exec that has ended is late.
      if (it == m_streams.end()) return;
      if (frame.kind == Kind::kStdin) {
        it->second.proc->queue_stdin(frame.payload);
      } else {
        it->second.proc->close_stdin();
      }
      return;
    }
    case Kind::kStdout:
    case Kind::kStderr:
      send_log(fmt::format("ignoring an output frame from the host (stream {})", frame.stream));
      return;
  }
}

void Agent::on_control(const std::string& payload) {
  auto message = agent_proto::parse_control(payload);
  if (!message) {
    sayf("{}", message.error().to_string());
    send_log(message.error().to_string());
    return;
  }
  const auto type = (*message)["type"].get<std::string>();
  if (type == agent_proto::k_plan) {
    on_plan(*message);
  } else if (type == agent_proto::k_stop) {
    int timeout = m_plan ? m_plan->stop_timeout_s : 10;
    if (auto t = message->find("timeout_s"); t != message->end() && t->is_number_integer()) {
      timeout = std::clamp(t->get<int>(), 0, 3600);
    }
    handle_stop(timeout, "the host asked to stop");
  } else if (type == agent_proto::k_hello) {
    // The host asks for a fresh handshake (it reconnected without the port noticing, e.g. after
    // restoring a snapshot).
    send_hello();
  } else if (type == agent_proto::k_exec) {
    start_exec(*message);
  } else if (type == agent_proto::k_resize) {
    resize_exec(*message);
  } else if (type == agent_proto::k_signal) {
    signal_exec(*message);
  } else {
    // Newer hosts may send messages this agent does not know: say so, do not fail.
    send_log(fmt::format("fc-agent {} ignores message type '{}'", FCVM_VERSION, type));
  }
}

void Agent::on_plan(const nlohmann::json& message) {
  if (m_phase == Phase::kDone) {
    send_log("plan ignored: the VM is powering off");
    return;
  }
  auto it = message.find("plan");
  if (it == message.end() || !it->is_object()) {
    fail_plan("protocol", "plan message without a plan object");
    return;
  }
  auto plan = agent_proto::plan_from_json(*it);
  if (!plan) {
    if (!m_plan) fail_plan("protocol", plan.error().message());
    return;
  }
  if (plan->version != agent_proto::k_protocol_version) {
    auto why = fmt::format("the host speaks agent protocol version {}, fc-agent {} speaks {}",
                           plan->version, FCVM_VERSION, agent_proto::k_protocol_version);
    if (m_plan) {
      send_log(why + ": plan ignored");  // a running container outlives a confused host
    } else {
      fail_plan("protocol", why);
    }
    return;
  }
  if (m_awaiting_host) {
    // The host's go for the plan MMDS gave: the same plan (the host made both), now with the
    // host attached.
    if (plan->vm_id != m_plan->vm_id) {
      fail_plan("protocol", fmt::format("the host's plan is for VM {}, MMDS's for VM {}",
                                        plan->vm_id, m_plan->vm_id));
      return;
    }
    sayf("plan received from the host: {}", m_deferred_image.empty()
                                                ? "the container starts once prepared"
                                                : "starting the container");
    m_awaiting_host = false;
    if (auto r = apply_system(*plan, false); !r) sayf("{}", r.error().to_string());  // the clock
    m_plan = std::move(*plan);
    if (!m_deferred_image.empty()) start_container(std::exchange(m_deferred_image, {}));
    return;
  }
  if (m_plan) {
    // A re-handshake (new host connection): the container is not started twice. The clock and
    // the entropy pool are refreshed: after a snapshot restore both are stale or shared.
    sayf("plan received again (state {}): keeping the running plan", state_name());
    if (auto r = apply_system(*plan, false); !r) sayf("{}", r.error().to_string());
    if (plan->vm_id != m_plan->vm_id) adopt_identity(*plan);
    if (m_phase == Phase::kRunning) m_channel.send_control(agent_proto::encode_ready());
    return;
  }
  m_plan = std::move(*plan);
  start_plan();
}

void Agent::send_event(const std::string& name, const std::string& detail) {
  agent_proto::Event event{name, uptime_ms(), detail};
  sayf("event {}{}{}", name, detail.empty() ? "" : ": ", detail);
  m_channel.send_control(agent_proto::encode_event(event));
}

void Agent::send_log(const std::string& message) {
  m_channel.send_control(agent_proto::encode_log(message));
}

void Agent::fail_plan(const std::string& stage, const std::string& message) {
  if (m_phase == Phase::kDone) return;
  sayf("error in stage {}: {}", stage, message);
  agent_proto::ErrorMsg error{stage, message};
  m_channel.send_control(agent_proto::encode_error(error));
  finish(fmt::format("{} failed", stage));
}

void Agent::finish(const std::string& reason) {
  if (m_phase == Phase::kDone) return;
  m_phase = Phase::kDone;
  m_finish_reason = reason;
  cancel_helpers();
  m_notify_fd.reset();
  m_pid_watch.reset();
  send_log(fmt::format("powering off: {}", reason));
  sayf("powering off once the host has the answer: {}", reason);
  m_power_off_at_ms = uptime_ms() + k_answer_grace_ms;
}

void Agent::on_signal() {
  while (auto signo = m_signals.take()) {
    int timeout = m_plan ? m_plan->stop_timeout_s : 10;
    handle_stop(timeout, fmt::format("received {}", strsignal(*signo)));
  }
}

void Agent::check_deadlines() {
  int64_t now = uptime_ms();
  if (m_phase == Phase::kStarting && !m_ready && !m_probe_running && m_probe_at_ms > 0 &&
      now >= m_probe_at_ms) {
    schedule_running_probe();
  }
  if (m_kill_at_ms > 0 && now >= m_kill_at_ms) {
    m_kill_at_ms = 0;
    if (runs_crun()) {
      kill_crun_container();
      return;
    }
    auto it = m_streams.find(agent_proto::k_main_stream);
    if (it != m_streams.end() && !it->second.proc->exited()) {
      sayf("podman run still running after the stop timeout: killing it");
      send_log("the container did not stop in time: killing podman run");
      (void)it->second.proc->signal(SIGKILL);
    }
  }
}

}  // namespace fcvm::agent
