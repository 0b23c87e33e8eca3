// The monitor's conversation with fc-agent: every message is built and read with agent_proto's
// codec (messages.hpp).
#include <fmt/format.h>

#include <cstring>

#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"
#include "fcvm/vm/monitor_impl.hpp"

namespace fcvm::vm {

namespace proto = agent_proto;

void Monitor::send_agent(const std::string& control) {
  send_agent_frame(proto::Kind::kControl, proto::k_main_stream, control);
}

void Monitor::send_agent_frame(proto::Kind kind, uint32_t stream, std::string_view payload) {
  if (!m_channel_open) return;
  auto r = proto::write_frame(m_vm->channel.get(), kind, stream, payload);
  if (!r) FCVM_LOG(kWarn, "monitor", "send to agent: {}", r.error().to_string());
}

void Monitor::maybe_send_plan() {
  if (!m_plan_pending) return;
  if (m_launch.wait_attach && !attached_client() &&
      (m_launch.hold || Clock::now() < m_attach_deadline)) {
    if (m_launch.hold && m_hello && !m_booted_published) {
      m_booted_published = true;
      publish(EventType::kBooted);
    }
    return;
  }
  m_plan_pending = false;
  send_agent(proto::encode_plan(m_vm->plan));
  // run -i: input typed while the VM booted (the agent keeps it for the container).
  for (size_t at = 0; at < m_early_stdin.size(); at += proto::k_max_payload) {
    send_agent_frame(proto::Kind::kStdin, proto::k_main_stream,
                     std::string_view(m_early_stdin).substr(at, proto::k_max_payload));
  }
  m_early_stdin.clear();
  if (m_early_stdin_eof) send_agent_frame(proto::Kind::kStdinEof, proto::k_main_stream, {});
}

uint32_t Monitor::start_guest_exec(proto::Exec exec) {
  exec.stream = m_next_stream++;
  send_agent(proto::encode_exec(exec));
  return exec.stream;
}

void Monitor::on_agent_exit(uint32_t stream, int code) {
  if (stream == proto::k_main_stream) {
    m_exit_code = code;
    advance(Phase::kEnding);
    m_timings.mark("container_exited", std::to_string(code));
    if (m_log) m_log->flush();
    m_gate->on_container_exit(code);
    on_gate_verdict();
  } else if (stream == m_sync_stream && m_sync_stream != 0) {
    m_sync_exit = code;
  } else if (stream == m_probe_stream && m_probe_stream != 0) {
    m_probe_stream = 0;
    m_gate->on_probe_exit(code, Clock::now());
    on_gate_verdict();
  } else if (auto* c = client_for_stream(stream)) {
    publish(EventType::kExecExited, {}, code);
    reply(*c, control::Exited{code});
    c->guest_stream = 0;
  }
}

Result<> Monitor::on_agent_control(const std::string& payload) {
  FCVM_TRY_ASSIGN(auto msg, proto::parse_control(payload));
  auto type = msg["type"].get<std::string>();
  if (type == proto::k_hello) {
    FCVM_TRY_ASSIGN(auto hello, proto::hello_from_json(msg));
    if (hello.version != proto::k_protocol_version) {
      return fail(
          ErrorCode::kProtocol,
          fmt::format("guest agent speaks protocol version {}, this fcvm speaks {}: rebuild "
                      "the guest image with scripts/fcvm-init.sh",
                      hello.version, proto::k_protocol_version));
    }
    m_timings.mark_guest("agent_hello", hello.uptime_ms);
    if (!m_hello) {
      m_hello = true;
      advance(Phase::kStarting);
      m_plan_pending = true;
      maybe_send_plan();
    }
    m_gate->on_hello();
    on_gate_verdict();
  } else if (type == proto::k_event) {
    FCVM_TRY_ASSIGN(auto event, proto::event_from_json(msg));
    m_timings.mark_guest(event.name, event.uptime_ms);
  } else if (type == proto::k_ready) {
    m_timings.mark("container_running");
    advance(Phase::kRunning);
    publish(EventType::kRunning);
    m_gate->on_container_running(Clock::now());
    on_gate_verdict();
  } else if (type == proto::k_exit) {
    FCVM_TRY_ASSIGN(auto exit, proto::exit_from_json(msg));
    on_agent_exit(exit.stream, exit.code);
  } else if (type == proto::k_error) {
    FCVM_TRY_ASSIGN(auto error, proto::error_from_json(msg));
    record_error(
        Error(ErrorCode::kSystem, fmt::format("guest: {}: {}", error.stage, error.message)));
  } else if (type == proto::k_exec_error) {
    FCVM_TRY_ASSIGN(auto refused, proto::exec_error_from_json(msg));
    if (refused.stream == m_sync_stream && m_sync_stream != 0) {
      FCVM_LOG(kWarn, "monitor", "guest command refused: {}", refused.message);
    } else if (refused.stream == m_probe_stream && m_probe_stream != 0) {
      // A refused probe (e.g. the container is not up yet): the exit that follows retries it.
      FCVM_LOG(kInfo, "monitor", "readiness probe refused: {}", refused.message);
    } else if (auto* c = client_for_stream(refused.stream)) {
      // The exec did not start: the client's request fails (its exit that follows is dropped).
      reply(*c, control::Failure{Error(ErrorCode::kInvalidInput, refused.message)});
      c->guest_stream = 0;
    }
  } else if (type == proto::k_log) {
    FCVM_TRY_ASSIGN(auto text, proto::log_from_json(msg));
    FCVM_LOG(kInfo, "agent", "{}", text);
  }
  return {};
}

Result<> Monitor::on_agent_frame(const proto::Frame& frame) {
  if (frame.kind == proto::Kind::kControl) return on_agent_control(frame.payload);
  if (frame.kind != proto::Kind::kStdout && frame.kind != proto::Kind::kStderr) {
    return fail(ErrorCode::kProtocol, "unexpected frame kind from the guest");
  }
  if (frame.stream == proto::k_main_stream) {
    // The log on disk first and always: a client that does not read never costs it a byte.
    if (m_log) {
      m_log->write(frame.kind == proto::Kind::kStdout ? LogStream::kStdout : LogStream::kStderr,
                   frame.payload);
    }
    if (!m_ready) {
      m_gate->on_output(frame.payload);
      on_gate_verdict();
    }
    for (auto& c : m_control->clients()) {
      if (c.attach) m_control->send(c, frame.kind, 0, frame.payload);
    }
  } else if (auto* c = client_for_stream(frame.stream)) {
    m_control->send(*c, frame.kind, frame.stream, frame.payload);
  }
  return {};
}

Result<> Monitor::on_agent_bytes() {
  char buf[65536];
  ssize_t n = ::read(m_vm->channel.get(), buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return {};
  if (n <= 0) {
    m_channel_open = false;
    // Usually the VMM is going away (its exit status tells how). But a vsock connection can also
    // be reset under a live guest: a restored guest resets its vsock transport as it resumes,
    // possibly after the host has connected. Until the container's last answer, the monitor
    // connects again (connect_channel).
    if (m_phase <= Phase::kRunning && !m_exit_code && !m_error) {
      FCVM_LOG(kInfo, "monitor", "the agent channel closed ({}): connecting again",
               n == 0 ? "end of file" : std::strerror(errno));
      m_reconnect = true;
      m_reconnect_deadline = Clock::now() + k_reconnect_timeout;
    }
    return {};
  }
  m_agent_decoder.feed(std::string_view(buf, static_cast<size_t>(n)));
  for (;;) {
    auto frame = m_agent_decoder.next();
    if (!frame) return tl::unexpected<Error>(std::move(frame.error()).wrap("guest agent"));
    if (!*frame) return {};
    FCVM_TRY(on_agent_frame(**frame));
  }
}

Result<int> Monitor::run_in_guest(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds timeout) {
  m_sync_exit.reset();
  proto::Exec exec;
  exec.argv = argv;
  exec.in_vm = true;
  m_sync_stream = start_guest_exec(std::move(exec));
  auto deadline = Clock::now() + timeout;
  while (!m_sync_exit && m_channel_open && Clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    auto readable =
        wait_readable(m_vm->channel.get(), std::min(left, std::chrono::milliseconds(100)));
    if (readable && *readable) FCVM_TRY(on_agent_bytes());
  }
  m_sync_stream = 0;
  if (!m_sync_exit) {
    return fail(ErrorCode::kTimeout,
                fmt::format("{} did not finish in the guest", join(argv, " ")));
  }
  return *m_sync_exit;
}

}  // namespace fcvm::vm
