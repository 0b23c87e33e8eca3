#include "fcvm/vm/attach.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fcvm/util/signal_fd.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"
#include "fcvm/vm/control_client.hpp"
#include "fcvm/vm/lifecycle.hpp"

namespace fcvm::vm {

using namespace std::chrono_literals;
namespace proto = agent_proto;

namespace {

// What can be read from `fd` now, without waiting (input queued before its end was asked for).
void drain_input(int fd, const std::function<void(std::string_view)>& send) {
  char buf[32768];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN)) return;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return;
    send(std::string_view(buf, static_cast<size_t>(n)));
  }
}

// The start-up error the monitor wrote, if it has written one (non-blocking).
std::optional<Error> ready_error(int ready_fd, const state::VmRecord& rec) {
  auto readable = wait_readable(ready_fd, 0ms);
  if (!readable || !*readable) return std::nullopt;
  auto r = wait_ready(ready_fd, rec);
  if (r) return std::nullopt;
  return r.error();
}

// Copies what the monitor sent to `io` until its end: the container's exit code, or a failure
// that `on_failure` turns into the result. nullopt: not ended yet.
template <class OnFailure>
std::optional<Result<int>> deliver(const std::vector<ControlClient::Incoming>& items,
                                   const Stdio& io, const OnFailure& on_failure) {
  for (const auto& item : items) {
    if (const auto* out = std::get_if<ControlClient::Output>(&item)) {
      (void)write_all(out->kind == proto::Kind::kStderr ? io.err : io.out, out->bytes);
      continue;
    }
    const auto& msg = std::get<control::Message>(item);
    if (const auto* exited = std::get_if<control::Exited>(&msg)) return exited->code;
    if (const auto* failure = std::get_if<control::Failure>(&msg)) {
      return on_failure(failure->error);
    }
  }
  return std::nullopt;
}

}  // namespace

Result<std::string> parse_detach_keys(std::string_view spec) {
  std::string keys;
  if (spec.empty()) return keys;
  auto bad = [&](std::string_view key) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid --detach-keys \"{}\": \"{}\" is not a key (a single "
                            "character or ctrl-X with X in a-z, @, [, \\, ], ^, _)",
                            spec, key));
  };
  for (auto key : split(spec, ',')) {
    if (key.size() == 1) {
      keys += key[0];
      continue;
    }
    constexpr std::string_view k_ctrl = "ctrl-";
    if (key.size() != k_ctrl.size() + 1 || key.substr(0, k_ctrl.size()) != k_ctrl) return bad(key);
    char c = key.back();
    if (c >= 'a' && c <= 'z') {
      keys += static_cast<char>(c - 'a' + 1);
    } else if (c == '@' || c == '[' || c == '\\' || c == ']' || c == '^' || c == '_') {
      keys += static_cast<char>(c - '@');
    } else {
      return bad(key);
    }
  }
  return keys;
}

std::string DetachKeys::feed(std::string_view input, bool& detached) {
  detached = false;
  std::string out;
  if (m_sequence.empty()) return std::string(input);
  for (char c : input) {
    if (c == m_sequence[m_matched]) {
      if (++m_matched == m_sequence.size()) {
        m_matched = 0;
        detached = true;
        return out;
      }
      continue;
    }
    // Not the sequence after all: what was held goes out, and this key may begin it anew.
    out.append(m_sequence, 0, m_matched);
    m_matched = 0;
    if (c == m_sequence[0]) {
      m_matched = 1;
      if (m_sequence.size() == 1) {
        detached = true;
        return out;
      }
    } else {
      out += c;
    }
  }
  return out;
}

Result<AttachEnd> attach_foreground(const state::VmRecord& rec, int ready_fd, const Stdio& io,
                                    const AttachOptions& options, ExecControl* ctl) {
  std::optional<SignalFd> signals;
  if (ctl == nullptr)
    signals.emplace(std::initializer_list<int>{SIGINT, SIGTERM, SIGHUP, SIGWINCH});
  auto size = [&]() -> std::optional<WindowSize> {
    return options.tty && options.window_size ? options.window_size() : std::nullopt;
  };
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
  control::Attach attach;
  if (auto ws = size()) {
    attach.rows = ws->rows;
    attach.cols = ws->cols;
  }
  FCVM_TRY(client->send(attach));
  // 2. Output until the exit code; input while it runs.
  int stops = 0;
  bool stdin_open = options.interactive;
  DetachKeys detach(options.detach_keys);
  for (;;) {
    int events_fd = ctl != nullptr ? ctl->fd() : signals->fd();
    pollfd fds[3] = {
        {client->fd(), POLLIN, 0}, {events_fd, POLLIN, 0}, {stdin_open ? io.in : -1, POLLIN, 0}};
    int r = ::poll(fds, 3, -1);
    if (r < 0 && errno == EINTR) continue;
    if ((fds[1].revents & POLLIN) && ctl != nullptr) {
      for (const auto& c : ctl->take()) {
        if (c.size) {
          (void)client->send(control::Resize{c.size->rows, c.size->cols});
        } else if (c.close_stdin) {
          // What the writer put in before it asked for the close goes first (containerd's
          // CloseIO can overtake the input it follows).
          if (stdin_open) {
            drain_input(io.in, [&](std::string_view data) {
              (void)client->send_input(proto::Kind::kStdin, data);
            });
            (void)client->send_input(proto::Kind::kStdinEof, {});
          }
          stdin_open = false;
        } else {
          (void)client->send(control::ContainerSignal{c.signal});
        }
      }
    } else if (fds[1].revents & POLLIN) {
      if (auto signo = signals->take(); signo && *signo == SIGWINCH) {
        if (auto ws = size()) (void)client->send(control::Resize{ws->rows, ws->cols});
      } else if (signo) {
        if (++stops == 1) {
          (void)client->send(control::Stop{});
        } else {
          (void)client->send(control::Kill{});
        }
      }
    }
    if (fds[2].revents & (POLLIN | POLLHUP)) {
      char buf[32768];
      ssize_t n = ::read(io.in, buf, sizeof buf);
      if (n > 0) {
        bool detached = false;
        auto typed = detach.feed(std::string_view(buf, static_cast<size_t>(n)), detached);
        if (!typed.empty()) (void)client->send_input(proto::Kind::kStdin, typed);
        if (detached) {
          FCVM_TRY(client->send(control::Detach{}));
          return AttachEnd{0, true};
        }
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        stdin_open = false;
        (void)client->send_input(proto::Kind::kStdinEof, {});
      }
    }
    if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    FCVM_TRY_ASSIGN(auto items, client->pump());
    if (!items) {
      if (auto e = ready_error(ready_fd, rec)) return tl::unexpected<Error>(*e);
      return fail(ErrorCode::kSystem,
                  fmt::format("the VM monitor went away without an exit code (see {}/monitor.log)",
                              rec.dir));
    }
    auto end = deliver(*items, io, [&](const Error& error) -> Result<int> {
      if (stops > 0) return 130;  // interrupted while booting
      if (auto e = ready_error(ready_fd, rec)) return tl::unexpected<Error>(*e);
      return tl::unexpected<Error>(error);
    });
    if (end) {
      if (!*end) return tl::unexpected<Error>(end->error());
      return AttachEnd{**end, false};
    }
  }
}

ExecControl::ExecControl() : m_event(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

void ExecControl::post(Command c) {
  {
    std::lock_guard lock(m_mutex);
    m_queue.push_back(std::move(c));
  }
  uint64_t one = 1;
  (void)!::write(m_event.get(), &one, sizeof one);
}

void ExecControl::signal(const std::string& name) { post({name, std::nullopt}); }

void ExecControl::resize(WindowSize size) { post({{}, size}); }

void ExecControl::close_stdin() { post({{}, std::nullopt, true}); }

std::vector<ExecControl::Command> ExecControl::take() {
  uint64_t count = 0;
  (void)!::read(m_event.get(), &count, sizeof count);
  std::lock_guard lock(m_mutex);
  return std::exchange(m_queue, {});
}

Result<int> exec_in_vm(const state::VmRecord& rec, const ExecRequest& req, const Stdio& io,
                       ExecControl* ctl) {
  // This process's signals only when nobody else controls the exec (a server's threads must not
  // take the process's signals).
  std::optional<SignalFd> signals;
  if (ctl == nullptr)
    signals.emplace(std::initializer_list<int>{SIGINT, SIGTERM, SIGHUP, SIGWINCH});
  FCVM_TRY_ASSIGN(auto client, ControlClient::connect(rec));
  control::Exec exec;
  exec.argv = req.argv;
  exec.env = req.env;
  exec.workdir = req.workdir;
  exec.user = req.user;
  exec.tty = req.tty;
  exec.in_vm = req.in_vm;
  exec.stdin_open = req.interactive;
  if (req.tty && req.window_size) {
    if (auto ws = req.window_size()) {
      exec.rows = ws->rows;
      exec.cols = ws->cols;
    }
  }
  FCVM_TRY(client.send(exec));
  bool stdin_open = req.interactive;
  int events_fd = ctl != nullptr ? ctl->fd() : signals->fd();
  for (;;) {
    pollfd fds[3] = {
        {client.fd(), POLLIN, 0}, {events_fd, POLLIN, 0}, {stdin_open ? io.in : -1, POLLIN, 0}};
    int r = ::poll(fds, 3, -1);
    if (r < 0 && errno == EINTR) continue;
    if ((fds[1].revents & POLLIN) && ctl != nullptr) {
      for (const auto& c : ctl->take()) {
        if (c.size) {
          if (req.tty) (void)client.send(control::Resize{c.size->rows, c.size->cols});
        } else if (c.close_stdin) {
          if (stdin_open) {
            drain_input(io.in, [&](std::string_view data) {
              (void)client.send_input(proto::Kind::kStdin, data);
            });
            (void)client.send_input(proto::Kind::kStdinEof, {});
          }
          stdin_open = false;
        } else {
          (void)client.send(control::Signal{c.signal});
        }
      }
    } else if (fds[1].revents & POLLIN) {
      if (auto signo = signals->take()) {
        if (*signo == SIGWINCH) {
          auto ws = req.tty && req.window_size ? req.window_size() : std::nullopt;
          if (ws) (void)client.send(control::Resize{ws->rows, ws->cols});
        } else {
          const char* name = *signo == SIGINT ? "INT" : *signo == SIGHUP ? "HUP" : "TERM";
          (void)client.send(control::Signal{name});
        }
      }
    }
    if (fds[2].revents & (POLLIN | POLLHUP)) {
      char buf[32768];
      ssize_t n = ::read(io.in, buf, sizeof buf);
      if (n > 0) {
        (void)client.send_input(proto::Kind::kStdin, std::string_view(buf, static_cast<size_t>(n)));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        stdin_open = false;
        (void)client.send_input(proto::Kind::kStdinEof, {});
      }
    }
    if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    FCVM_TRY_ASSIGN(auto items, client.pump());
    if (!items) {
      return fail(ErrorCode::kSystem,
                  fmt::format("VM {}: the connection to its monitor closed", rec.name));
    }
    auto end = deliver(*items, io, [&](const Error& error) -> Result<int> {
      if (error.code() == ErrorCode::kInvalidInput) {
        return tl::unexpected<Error>(error.wrap(fmt::format("exec in VM {}", rec.name)));
      }
      return tl::unexpected<Error>(error);
    });
    if (end) return *end;
  }
}

}  // namespace fcvm::vm
