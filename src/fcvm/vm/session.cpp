#include "fcvm/vm/session.hpp"

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <fmt/format.h>

#include "fcvm/util/fs.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fcvm::vm {

using namespace std::chrono_literals;
namespace proto = agent_proto;

std::string AgentSession::console_tail() const {
  auto text = read_file(m_io.console_log);
  if (!text) return {};
  auto lines = split(trim(*text), '\n');
  std::string out;
  size_t first = lines.size() > 8 ? lines.size() - 8 : 0;
  for (size_t i = first; i < lines.size(); ++i) out += fmt::format("\n  {}", lines[i]);
  return out.empty() ? out : fmt::format("\nlast console lines ({}):{}", m_io.console_log, out);
}

Result<> AgentSession::send_control(const std::string& payload) {
  return proto::write_frame(m_channel.get(), proto::Kind::kControl, proto::k_main_stream, payload);
}

Result<> AgentSession::on_control(const nlohmann::json& msg) {
  auto type = msg["type"].get<std::string>();
  if (type == proto::k_hello) {
    auto version = msg.value("version", 0u);
    if (version != proto::k_protocol_version) {
      return fail(ErrorCode::kProtocol,
                  fmt::format("guest agent speaks protocol version {}, this fcvm speaks {}: rebuild "
                              "the guest image with scripts/fcvm-init.sh",
                              version, proto::k_protocol_version));
    }
    m_timings.mark_guest("agent_hello", msg.value("uptime_ms", 0LL));
    if (!m_hello) {
      m_hello = true;
      FCVM_TRY_CTX(send_control(proto::encode_plan(m_plan)), "send plan");
    }
  } else if (type == proto::k_event) {
    m_timings.mark_guest(msg.value("name", "event"), msg.value("uptime_ms", 0LL));
  } else if (type == proto::k_ready) {
    m_timings.mark("container_running");
  } else if (type == proto::k_exit) {
    if (msg.value("stream", 0u) == proto::k_main_stream) {
      m_exit_code = msg.value("code", 1);
      m_timings.mark("container_exited", std::to_string(*m_exit_code));
    }
  } else if (type == proto::k_error) {
    m_guest_error = Error(ErrorCode::kSystem, fmt::format("guest: {}: {}", msg.value("stage", "?"),
                                                          msg.value("message", "?")));
  } else if (type == proto::k_log) {
    FCVM_LOG(kInfo, "agent", "{}", msg.value("message", ""));
  } else {
    FCVM_LOG(kDebug, "agent", "ignoring message type {}", type);
  }
  return {};
}

Result<> AgentSession::on_frame(const proto::Frame& frame) {
  switch (frame.kind) {
    case proto::Kind::kControl: {
      auto msg = proto::parse_control(frame.payload);
      if (!msg) return tl::unexpected<Error>(msg.error());
      return on_control(*msg);
    }
    case proto::Kind::kStdout:
    case proto::Kind::kStderr: {
      int fd = frame.kind == proto::Kind::kStdout ? m_io.out_fd : m_io.err_fd;
      if (fd >= 0) (void)write_all(fd, frame.payload);
      if (m_io.log_fd >= 0) (void)write_all(m_io.log_fd, frame.payload);
      return {};
    }
    default:
      return fail(ErrorCode::kProtocol, "unexpected frame kind from the guest");
  }
}

void AgentSession::on_signal() {
  signalfd_siginfo info{};
  if (::read(m_io.signal_fd, &info, sizeof info) != sizeof info) return;
  ++m_signals;
  FCVM_LOG(kInfo, "run", "signal {} (#{})", info.ssi_signo, m_signals);
  if (m_signals == 1 && m_hello && !m_stop_sent) {
    m_stop_sent = true;
    (void)send_control(proto::encode_stop({m_plan.stop_timeout_s}));
  }
}

Result<SessionResult> AgentSession::run(UniqueFd channel, std::chrono::milliseconds boot_timeout) {
  m_channel = std::move(channel);
  proto::Decoder decoder;
  auto boot_deadline = std::chrono::steady_clock::now() + boot_timeout;
  std::optional<std::chrono::steady_clock::time_point> poweroff_deadline;
  bool channel_open = true;
  for (;;) {
    // Interrupted before the guest could take a stop, or a second signal: end the VM now.
    if (m_signals >= 2 || (m_signals == 1 && !m_hello)) {
      m_backend.kill();
      return SessionResult{m_exit_code, true};
    }
    auto vmm_status = m_backend.wait_exit(0ms);
    if (!vmm_status) return tl::unexpected<Error>(vmm_status.error());
    if (*vmm_status) {
      if (m_guest_error) return tl::unexpected<Error>(*m_guest_error);
      if (m_exit_code) return SessionResult{m_exit_code, m_signals > 0};
      if (m_signals > 0) return SessionResult{std::nullopt, true};
      return fail(ErrorCode::kSystem,
                  fmt::format("the VM stopped before its container finished ({} {}){}",
                              m_backend.name(), (*vmm_status)->describe(), console_tail()));
    }
    auto now = std::chrono::steady_clock::now();
    if (!m_hello && now > boot_deadline) {
      m_backend.kill();
      return fail(ErrorCode::kTimeout,
                  fmt::format("the guest agent did not answer within {} s{}",
                              std::chrono::duration_cast<std::chrono::seconds>(boot_timeout).count(),
                              console_tail()));
    }
    if ((m_exit_code || m_guest_error) && !poweroff_deadline) poweroff_deadline = now + 15s;
    if (poweroff_deadline && now > *poweroff_deadline) {
      FCVM_LOG(kWarn, "run", "guest did not power off; stopping the VMM");
      (void)m_backend.shutdown();
      continue;
    }
    pollfd fds[2] = {{channel_open ? m_channel.get() : -1, POLLIN, 0}, {m_io.signal_fd, POLLIN, 0}};
    int r = ::poll(fds, 2, 100);
    if (r < 0 && errno != EINTR) return fail_errno("poll");
    if (r <= 0) continue;
    if (fds[1].revents & POLLIN) on_signal();
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[65536];
      ssize_t n = ::read(m_channel.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // The VMM closed the channel: it is ending. The status check above will tell how.
        channel_open = false;
        continue;
      }
      decoder.feed(std::string_view(buf, static_cast<size_t>(n)));
      for (;;) {
        auto frame = decoder.next();
        if (!frame) return tl::unexpected<Error>(std::move(frame.error()).wrap("guest agent"));
        if (!*frame) break;
        FCVM_TRY(on_frame(**frame));
      }
    }
  }
}

}  // namespace fcvm::vm
