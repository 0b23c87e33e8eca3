#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/util/unix_socket.hpp"
#include "fcvm/vm/attach.hpp"
#include "fcvm/vm/lifecycle.hpp"

namespace fcvm::vm {
namespace proto = agent_proto;

namespace {
// SIGINT/SIGTERM/SIGHUP/SIGWINCH through a signalfd for the life of one exec.
class ExecSignals {
 public:
  ExecSignals() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGWINCH}) sigaddset(&set, s);
    ::pthread_sigmask(SIG_BLOCK, &set, &m_old);
    m_fd.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  }
  ~ExecSignals() { ::pthread_sigmask(SIG_SETMASK, &m_old, nullptr); }
  int fd() const { return m_fd.get(); }

 private:
  sigset_t m_old{};
  UniqueFd m_fd;
};

nlohmann::json window_size() {
  winsize ws{};
  // TIOCGWINSZ fills ws for the terminal on fd 1 (or fails harmlessly when it is not one).
  if (::ioctl(1, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0) return nullptr;
  return {{"rows", ws.ws_row}, {"cols", ws.ws_col}};
}
}  // namespace

Result<int> exec_in_vm(const state::VmRecord& rec, const ExecRequest& req) {
  ExecSignals signals;
  auto client = ControlClient::connect(rec);
  if (!client) return tl::unexpected<Error>(client.error());
  nlohmann::json msg = {{"type", "exec"},         {"argv", req.argv},        {"env", req.env},
                        {"workdir", req.workdir}, {"user", req.user},        {"tty", req.tty},
                        {"in_vm", req.in_vm},     {"stdin", req.interactive}};
  if (req.tty) {
    if (const char* term = std::getenv("TERM")) {
      bool set = false;
      for (const auto& e : req.env) set = set || e.rfind("TERM=", 0) == 0;
      if (!set) msg["env"].push_back(std::string("TERM=") + term);
    }
    auto ws = window_size();
    if (!ws.is_null()) msg.update(ws);
  }
  FCVM_TRY(client->send(msg));
  bool stdin_open = req.interactive;
  for (;;) {
    pollfd fds[3] = {
        {client->fd(), POLLIN, 0}, {signals.fd(), POLLIN, 0}, {stdin_open ? 0 : -1, POLLIN, 0}};
    int r = ::poll(fds, 3, -1);
    if (r < 0 && errno == EINTR) continue;
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info{};
      if (::read(signals.fd(), &info, sizeof info) == sizeof info) {
        if (info.ssi_signo == SIGWINCH) {
          auto ws = window_size();
          if (req.tty && !ws.is_null()) {
            nlohmann::json resize = {{"type", "resize"}};
            resize.update(ws);
            (void)client->send(resize);
          }
        } else {
          const char* name = info.ssi_signo == SIGINT   ? "INT"
                             : info.ssi_signo == SIGHUP ? "HUP"
                                                        : "TERM";
          (void)client->send({{"type", "signal"}, {"signal", name}});
        }
      }
    }
    if (fds[2].revents & (POLLIN | POLLHUP)) {
      char buf[32768];
      ssize_t n = ::read(0, buf, sizeof buf);
      if (n > 0) {
        (void)client->send_frame(proto::Kind::kStdin, 0,
                                 std::string_view(buf, static_cast<size_t>(n)));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        stdin_open = false;
        (void)client->send_frame(proto::Kind::kStdinEof, 0, {});
      }
    }
    if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    auto messages = client->pump();
    if (!messages) return tl::unexpected<Error>(messages.error());
    if (!*messages) {
      return fail(ErrorCode::kSystem,
                  fmt::format("VM {}: the connection to its monitor closed", rec.name));
    }
    for (const auto& m : **messages) {
      auto type = m["type"].get<std::string>();
      if (type == proto::k_exit) return m.value("code", 1);
      if (type == "exec_error") {
        return fail(ErrorCode::kInvalidInput,
                    fmt::format("exec in VM {}: {}", rec.name, m.value("message", "failed")));
      }
      if (type == "error") return fail(ErrorCode::kSystem, m.value("message", "exec failed"));
    }
  }
}

}  // namespace fcvm::vm
