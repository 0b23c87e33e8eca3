#include "agent/piped_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/console.hpp"

namespace fcvm::agent {
namespace {
// A pipe whose agent-side end is non-blocking; the child's end stays blocking, as programs expect.
Result<Pipe> make_pipe(bool agent_reads) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return fail_errno("pipe2");
  Pipe p{UniqueFd(fds[0]), UniqueFd(fds[1])};
  int ours = agent_reads ? p.read.get() : p.write.get();
  int flags = ::fcntl(ours, F_GETFL);
  if (flags < 0 || ::fcntl(ours, F_SETFL, flags | O_NONBLOCK) != 0) {
    return fail_errno("fcntl O_NONBLOCK");
  }
  return p;
}
}  // namespace

Result<std::unique_ptr<PipedProcess>> PipedProcess::start(SpawnOptions options, bool pipe_stdin) {
  auto out = make_pipe(true);
  if (!out) return tl::unexpected<Error>(out.error());
  auto err = make_pipe(true);
  if (!err) return tl::unexpected<Error>(err.error());
  Pipe in;
  if (pipe_stdin) {
    auto p = make_pipe(false);
    if (!p) return tl::unexpected<Error>(p.error());
    in = std::move(*p);
  }
  // The child's ends are borrowed by spawn (dup'ed to 0..2 in the child) and closed here after.
  options.stdout_fd = out->write.get();
  options.stderr_fd = err->write.get();
  options.stdin_fd = pipe_stdin ? in.read.get() : -1;
  auto child = ChildProcess::spawn(options);
  if (!child) return tl::unexpected<Error>(child.error());
  auto proc = std::make_unique<PipedProcess>();
  proc->m_child = std::move(*child);
  proc->m_out[0] = std::move(out->read);
  proc->m_out[1] = std::move(err->read);
  proc->m_in = std::move(in.write);
  return proc;
}

Result<std::unique_ptr<PipedProcess>> PipedProcess::start_on_terminal(const SpawnOptions& options,
                                                                      TerminalSize size) {
  auto terminal = open_terminal(size);
  if (!terminal) return tl::unexpected<Error>(terminal.error());
  // Three fds of the one master, so that each role closes on its own: output (closed at EIO,
  // when the session's last process closed the slave), stdin (closed after end of file is typed)
  // and the ioctls (resize, foreground group) for as long as the process lives.
  int master = terminal->master.get();
  UniqueFd out(::fcntl(master, F_DUPFD_CLOEXEC, 3));
  UniqueFd in(::fcntl(master, F_DUPFD_CLOEXEC, 3));
  if (!out || !in) return fail_errno("dup the pty master");
  auto child = spawn_on_terminal(options, terminal->slave.get());
  if (!child) return tl::unexpected<Error>(child.error());
  terminal->slave.reset();  // only the session holds the slave now
  auto proc = std::make_unique<PipedProcess>();
  proc->m_child = std::move(*child);
  proc->m_out[0] = std::move(out);
  proc->m_in = std::move(in);
  proc->m_terminal = std::move(terminal->master);
  return proc;
}

namespace {
// Receives one fd sent with SCM_RIGHTS on a connected socket.
Result<UniqueFd> receive_fd(int sock) {
  char data[256];
  iovec iov{data, sizeof data};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fail_errno("receive the terminal");
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int))) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
      return UniqueFd(fd);
    }
  }
  return fail(ErrorCode::kSystem, "the console socket's message carried no terminal");
}
}  // namespace

Result<std::unique_ptr<PipedProcess>> PipedProcess::start_with_console_socket(
    SpawnOptions options, const std::string& socket_path, std::chrono::milliseconds timeout) {
  (void)::unlink(socket_path.c_str());
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener) return fail_errno("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    return fail(ErrorCode::kInvalidInput, "console socket path too long: " + socket_path);
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener.get(), 1) != 0) {
    return fail_errno("listen on " + socket_path);
  }
  auto messages = make_pipe(true);
  if (!messages) return tl::unexpected<Error>(messages.error());
  options.stdout_fd = messages->write.get();
  options.stderr_fd = messages->write.get();
  options.stdin_fd = -1;
  auto child = ChildProcess::spawn(options);
  messages->write.reset();
  if (!child) {
    (void)::unlink(socket_path.c_str());
    return tl::unexpected<Error>(child.error());
  }
  auto proc = std::make_unique<PipedProcess>();
  proc->m_out[1] = std::move(messages->read);
  UniqueFd master;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      sayf("{}: no terminal within {} ms: killing it", options.argv[0], timeout.count());
      (void)child->signal(SIGKILL);
      break;
    }
    pollfd fds[2] = {{listener.get(), POLLIN, 0}, {child->pidfd(), POLLIN, 0}};
    int r = ::poll(fds, 2, static_cast<int>(left.count()));
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    if (fds[0].revents & POLLIN) {
      UniqueFd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!conn) continue;
      auto fd = receive_fd(conn.get());
      if (fd) {
        master = std::move(*fd);
        break;
      }
      sayf("console socket: {}", fd.error().to_string());
      continue;
    }
    if (fds[1].revents) break;  // it ended first: its status and messages tell why
  }
  (void)::unlink(socket_path.c_str());
  proc->m_child = std::move(*child);
  if (master) {
    int flags = ::fcntl(master.get(), F_GETFL);
    if (flags >= 0) (void)::fcntl(master.get(), F_SETFL, flags | O_NONBLOCK);
    UniqueFd out(::fcntl(master.get(), F_DUPFD_CLOEXEC, 3));
    UniqueFd in(::fcntl(master.get(), F_DUPFD_CLOEXEC, 3));
    if (!out || !in) return fail_errno("dup the container's terminal");
    proc->m_out[0] = std::move(out);
    proc->m_in = std::move(in);
    proc->m_terminal = std::move(master);
  }
  return proc;
}

Result<> PipedProcess::resize(TerminalSize size) const {
  if (!m_terminal) return fail(ErrorCode::kInvalidInput, "the process has no terminal");
  return set_terminal_size(m_terminal.get(), size);
}

pid_t PipedProcess::foreground_group() const {
  if (!m_terminal) return 0;
  // On a pty master, tcgetpgrp reports the foreground process group of the slave.
  pid_t group = ::tcgetpgrp(m_terminal.get());
  return group > 0 ? group : 0;
}

void PipedProcess::reap() {
  if (m_status) return;
  auto st = m_child.try_wait();
  if (!st) {
    // waitid on our own pidfd cannot fail unless the process was reaped elsewhere: report it as
    // killed rather than spinning on a pidfd that stays readable.
    sayf("wait for pid {}: {}", m_child.pid(), st.error().to_string());
    m_status = ExitStatus{false, SIGKILL};
    return;
  }
  if (*st) m_status = **st;
}

std::string PipedProcess::read_output(int index, size_t max) {
  std::string buf(max, '\0');
  for (;;) {
    ssize_t n = ::read(m_out[index].get(), buf.data(), buf.size());
    if (n > 0) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return {};
    m_out[index].reset();  // end of file, or an error that will not go away
    return {};
  }
}

void PipedProcess::close_outputs() {
  m_out[0].reset();
  m_out[1].reset();
}

void PipedProcess::queue_stdin(std::string_view data) {
  if (!m_in || m_close_in) return;  // stdin closed: the host's late bytes have nowhere to go
  m_in_queue.append(data);
  // A terminal's Enter arrives as \r in raw mode (ICRNL makes it \n on the way in).
  if (!data.empty()) m_at_line_start = data.back() == '\n' || data.back() == '\r';
}

void PipedProcess::close_stdin() {
  if (m_terminal && m_in && !m_close_in) {
    m_in_queue.append(m_at_line_start ? 1 : 2, terminal_eof_char(m_terminal.get()));
  }
  m_close_in = true;
  if (m_in_queue.empty()) m_in.reset();
}

void PipedProcess::write_stdin() {
  while (m_in && !m_in_queue.empty()) {
    ssize_t n = ::write(m_in.get(), m_in_queue.data(), m_in_queue.size());
    if (n > 0) {
      m_in_queue.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    // EPIPE: the process closed its stdin; what it did not read is dropped (SIGPIPE is ignored).
    m_in_queue.clear();
    m_in.reset();
    return;
  }
  if (m_close_in) m_in.reset();
}

}  // namespace fcvm::agent
