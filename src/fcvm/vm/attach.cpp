#include "fcvm/vm/attach.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <thread>

#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"
#include "fcvm/vm/lifecycle.hpp"
#include "fcvm/vm/setup.hpp"

namespace fcvm::vm {

using namespace std::chrono_literals;
namespace proto = agent_proto;

namespace {
// The start-up error the monitor wrote, if it has written one (non-blocking).
std::optional<Error> ready_error(int ready_fd, const state::VmRecord& rec) {
  auto readable = wait_readable(ready_fd, 0ms);
  if (!readable || !*readable) return std::nullopt;
  auto r = wait_ready(ready_fd, rec);
  if (r) return std::nullopt;
  return r.error();
}
}  // namespace

Result<int> attach_foreground(const state::VmRecord& rec, int ready_fd) {
  StopSignals signals;
  // 1. Connect as soon as the monitor listens (it does before booting the VM).
  std::optional<ControlClient> client;
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!client) {
    auto c = ControlClient::connect(rec, 50ms);
    if (c) {
      client = std::move(*c);
      break;
    }
    if (auto e = ready_error(ready_fd, rec)) return tl::unexpected<Error>(*e);
    if (std::chrono::steady_clock::now() > deadline) {
      return fail(ErrorCode::kTimeout,
                  fmt::format("the VM monitor did not come up (see {}/monitor.log)", rec.dir));
    }
  }
  FCVM_TRY(client->send({{"type", "attach"}}));
  // 2. Output until the exit code.
  int stops = 0;
  for (;;) {
    pollfd fds[2] = {{client->fd(), POLLIN, 0}, {signals.fd(), POLLIN, 0}};
    int r = ::poll(fds, 2, -1);
    if (r < 0 && errno == EINTR) continue;
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info{};
      if (::read(signals.fd(), &info, sizeof info) == sizeof info) {
        (void)client->send({{"type", ++stops == 1 ? "stop" : "kill"}});
      }
    }
    if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    auto messages = client->pump();
    if (!messages) return tl::unexpected<Error>(messages.error());
    if (!*messages) {
      if (auto e = ready_error(ready_fd, rec)) return tl::unexpected<Error>(*e);
      return fail(ErrorCode::kSystem,
                  fmt::format("the VM monitor went away without an exit code (see {}/monitor.log)",
                              rec.dir));
    }
    for (const auto& msg : **messages) {
      auto type = msg["type"].get<std::string>();
      if (type == proto::k_exit) return msg.value("code", 1);
      if (type == proto::k_error) {
        if (stops > 0) return 130;  // interrupted while booting
        if (auto e = ready_error(ready_fd, rec)) return tl::unexpected<Error>(*e);
        return fail(ErrorCode::kSystem, msg.value("message", "the VM failed"));
      }
    }
  }
}

}  // namespace fcvm::vm
