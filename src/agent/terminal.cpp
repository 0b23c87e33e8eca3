#include "agent/terminal.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace fcvm::agent {
namespace {

// Writes errno and the failed step to the error pipe and exits; async-signal-safe.
[[noreturn]] void child_fail(int err_fd, const char* what) {
  int e = errno;
  ssize_t ignored = ::write(err_fd, &e, sizeof e);
  ignored = ::write(err_fd, what, std::strlen(what));
  (void)ignored;
  ::_exit(127);
}

Result<UniqueFd> open_master() {
  // /dev/ptmx finds the devpts instance mounted at /dev/pts next to it; /dev/pts/ptmx is that
  // instance's own multiplexer (present when devpts is mounted with ptmxmode).
  for (const char* path : {"/dev/ptmx", "/dev/pts/ptmx"}) {
    UniqueFd fd(::open(path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK));
    if (fd) return fd;
  }
  return fail_errno("open /dev/ptmx");
}

Result<UniqueFd> open_slave(int master) {
  int unlock = 0;
  // TIOCSPTLCK takes an int*: 0 unlocks the slave (what unlockpt() does).
  if (::ioctl(master, TIOCSPTLCK, &unlock) != 0) return fail_errno("unlock the pty");
  // TIOCGPTPEER (Linux 4.13) opens the slave through the master: no path lookup, so it works
  // even where /dev/pts is another devpts instance. The flags are those of the new fd.
  UniqueFd slave(::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (slave) return slave;
  unsigned int number = 0;
  // TIOCGPTN writes the slave's index to an unsigned int*.
  if (::ioctl(master, TIOCGPTN, &number) != 0) return fail_errno("get the pty number");
  auto path = fmt::format("/dev/pts/{}", number);
  slave.reset(::open(path.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave) return fail_errno(fmt::format("open {}", path));
  return slave;
}

}  // namespace

Result<Terminal> open_terminal(TerminalSize size) {
  Terminal t;
  auto master = open_master();
  if (!master) return tl::unexpected<Error>(master.error());
  t.master = std::move(*master);
  auto slave = open_slave(t.master.get());
  if (!slave) return tl::unexpected<Error>(slave.error());
  t.slave = std::move(*slave);
  if (size.rows > 0 || size.cols > 0) FCVM_TRY(set_terminal_size(t.master.get(), size));
  return t;
}

Result<> set_terminal_size(int fd, TerminalSize size) {
  winsize ws{};
  ws.ws_row = size.rows;
  ws.ws_col = size.cols;
  // TIOCSWINSZ takes a const winsize*; on a pty master it sets the size both ends report.
  if (::ioctl(fd, TIOCSWINSZ, &ws) != 0) {
    return fail_errno(fmt::format("set the terminal size to {}x{}", size.rows, size.cols));
  }
  return {};
}

char terminal_eof_char(int fd) {
  termios t{};
  // On Linux a pty master reports the termios of its slave (they share one line discipline).
  if (::tcgetattr(fd, &t) == 0 && t.c_cc[VEOF] != _POSIX_VDISABLE) {
    return static_cast<char>(t.c_cc[VEOF]);
  }
  return '\x04';  // ^D, every terminal's default
}

Result<ChildProcess> spawn_on_terminal(const SpawnOptions& options, int slave) {
  if (options.argv.empty()) return fail(ErrorCode::kInternal, "spawn: empty argv");
  // Everything the child touches is prepared here, before fork() (as in ChildProcess::spawn).
  std::vector<std::string> env_strings;
  if (!options.clear_env) {
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  }
  for (const auto& kv : options.env) {
    auto key = kv.substr(0, kv.find('=') + 1);
    std::erase_if(env_strings, [&](const std::string& s) { return s.rfind(key, 0) == 0; });
    env_strings.push_back(kv);
  }
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = options.argv;
  std::vector<char*> argvp;
  for (auto& s : argv_copy) argvp.push_back(s.data());
  argvp.push_back(nullptr);
  auto exe = find_executable(options.argv[0]);
  if (!exe) {
    return fail(ErrorCode::kUnavailable, fmt::format("{}: not found in PATH", options.argv[0]));
  }

  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return fail_errno("pipe2");
  UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return fail_errno("fork");
  if (pid == 0) {
    // Child: async-signal-safe calls only from here on.
    int ew = err_write.get();
    if (options.die_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
    }
    if (::setsid() < 0) child_fail(ew, "setsid");
    // TIOCSCTTY (arg 0: never steal): the slave was opened with O_NOCTTY and was never any
    // session's controlling terminal, and this process now leads a session without one.
    if (::ioctl(slave, TIOCSCTTY, 0) != 0) child_fail(ew, "TIOCSCTTY");
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s = 1; s < NSIG; ++s) {
      if (s != SIGKILL && s != SIGSTOP) ::signal(s, SIG_DFL);
    }
    for (int i = 0; i < 3; ++i) {
      // dup2 clears O_CLOEXEC on 0..2; the slave's own fd (>= 3, O_CLOEXEC) closes at exec.
      if (slave != i && ::dup2(slave, i) < 0) child_fail(ew, "dup2");
    }
    if (slave <= 2) {
      int flags = ::fcntl(slave, F_GETFD);
      if (flags >= 0) ::fcntl(slave, F_SETFD, flags & ~FD_CLOEXEC);
    }
    if (!options.cwd.empty() && ::chdir(options.cwd.c_str()) != 0) child_fail(ew, "chdir");
    ::execve(exe->c_str(), argvp.data(), envp.data());
    child_fail(ew, "exec");
  }
  err_write.reset();
  auto child = ChildProcess::adopt(pid);
  if (!child) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return tl::unexpected<Error>(child.error());
  }
  // The error pipe closes on a successful exec (O_CLOEXEC); otherwise it carries errno + step,
  // written in two parts: read to end of file.
  std::string report;
  char buf[128];
  for (;;) {
    ssize_t n = ::read(err_read.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    report.append(buf, static_cast<size_t>(n));
  }
  if (report.size() >= sizeof(int)) {
    int e;
    std::memcpy(&e, report.data(), sizeof e);
    (void)child->wait();
    return fail_errno(fmt::format("start {}: {}", options.argv[0], report.substr(sizeof(int))), e);
  }
  return child;
}

}  // namespace fcvm::agent
