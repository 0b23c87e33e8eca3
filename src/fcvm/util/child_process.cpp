#include "fcvm/util/child_process.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>

#include "fcvm/util/strings.hpp"

extern char** environ;

namespace fcvm {
namespace {

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

ExitStatus from_siginfo(const siginfo_t& info) {
  ExitStatus s;
  s.exited = info.si_code == CLD_EXITED;
  s.code = info.si_status;
  return s;
}

// Writes a message and errno to the error pipe and exits; async-signal-safe.
[[noreturn]] void child_fail(int err_fd, const char* what) {
  int e = errno;
  ssize_t ignored = ::write(err_fd, &e, sizeof e);
  ignored = ::write(err_fd, what, std::strlen(what));
  (void)ignored;
  ::_exit(127);
}

// The PID namespace's init (SpawnOptions::new_pid_namespace): async-signal-safe calls only.
volatile pid_t g_ns_program = 0;

void forward_signal(int sig) {
  if (g_ns_program > 0) ::kill(g_ns_program, sig);
}

// Forks the program (which returns 0 here and goes on to exec it), then reaps every process of the
// namespace until the program has ended, and exits as it did.
pid_t run_namespace_init(int err_fd) {
  pid_t program = ::fork();
  if (program < 0) child_fail(err_fd, "fork in the PID namespace");
  if (program == 0) return 0;
  ::close(err_fd);  // the program's copy closes at its exec: the parent sees it started
  g_ns_program = program;
  struct sigaction sa {};
  sa.sa_handler = forward_signal;
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) ::sigaction(s, &sa, nullptr);
  for (;;) {
    int status = 0;
    pid_t done = ::waitpid(-1, &status, 0);
    if (done < 0 && errno == EINTR) continue;
    if (done < 0) ::_exit(127);
    if (done != program) continue;
    ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
}

}  // namespace

std::string ExitStatus::describe() const {
  if (exited) return fmt::format("exit code {}", code);
  return fmt::format("killed by signal {} ({})", code, strsignal(code));
}

ChildProcess::~ChildProcess() { kill_and_reap(); }

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : m_pid(std::exchange(other.m_pid, 0)),
      m_pidfd(std::move(other.m_pidfd)),
      m_status(std::exchange(other.m_status, std::nullopt)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    kill_and_reap();
    m_pid = std::exchange(other.m_pid, 0);
    m_pidfd = std::move(other.m_pidfd);
    m_status = std::exchange(other.m_status, std::nullopt);
  }
  return *this;
}

void ChildProcess::kill_and_reap() {
  if (m_pid > 0 && !m_status) {
    (void)signal(SIGKILL);
    (void)wait();
  }
  m_pid = 0;
  m_pidfd.reset();
  m_status.reset();
}

pid_t ChildProcess::detach() {
  pid_t pid = m_pid;
  m_pid = 0;
  m_pidfd.reset();
  m_status.reset();
  return pid;
}

Result<ChildProcess> ChildProcess::spawn(const SpawnOptions& options) {
  if (options.argv.empty()) return fail(ErrorCode::kInternal, "spawn: empty argv");
  // Everything the child touches is prepared here, before fork().
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

  std::string exe = options.argv[0];
  if (exe.find('/') == std::string::npos) {
    auto found = find_executable(exe);
    if (!found) return fail(ErrorCode::kUnavailable, fmt::format("{}: not found in PATH", exe));
    exe = *found;
  }

  UniqueFd userns, netns;
  if (options.join_namespaces_of > 0) {
    auto own_user = fmt::format("/proc/self/ns/user");
    auto their_user = fmt::format("/proc/{}/ns/user", options.join_namespaces_of);
    struct stat a {
    }, b{};
    if (::stat(own_user.c_str(), &a) == 0 && ::stat(their_user.c_str(), &b) == 0 &&
        (a.st_ino != b.st_ino || a.st_dev != b.st_dev)) {
      userns.reset(::open(their_user.c_str(), O_RDONLY | O_CLOEXEC));
      if (!userns) return fail_errno(fmt::format("open {}", their_user));
    }
    auto their_net = fmt::format("/proc/{}/ns/net", options.join_namespaces_of);
    netns.reset(::open(their_net.c_str(), O_RDONLY | O_CLOEXEC));
    if (!netns) return fail_errno(fmt::format("open {}", their_net));
  }

  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return fail_errno("pipe2");
  UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);
  pid_t parent = ::getpid();

  // In a new PID namespace the child is its init: clone() with fork's semantics.
  pid_t pid = options.new_pid_namespace
                  ? static_cast<pid_t>(
                        ::syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, nullptr, nullptr, nullptr, 0))
                  : ::fork();
  if (pid < 0) return fail_errno(options.new_pid_namespace ? "clone (new PID namespace)" : "fork");
  if (pid == 0) {
    // Child: async-signal-safe calls only from here on.
    int ew = err_write.get();
    if (options.die_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      // (The init of a new namespace sees its parent, outside the namespace, as pid 0.)
      if (!options.new_pid_namespace && ::getppid() != parent) ::_exit(127);
    }
    if (options.new_session || options.controlling_tty >= 0) ::setsid();
    // TIOCSCTTY (arg 0: never steal): the terminal was opened with O_NOCTTY and is nobody's
    // controlling terminal, and this process now leads a session without one.
    if (options.controlling_tty >= 0 && ::ioctl(options.controlling_tty, TIOCSCTTY, 0) != 0) {
      child_fail(ew, "TIOCSCTTY");
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s = 1; s < NSIG; ++s) {
      if (s != SIGKILL && s != SIGSTOP) ::signal(s, SIG_DFL);
    }
    if (userns && ::setns(userns.get(), CLONE_NEWUSER) != 0) child_fail(ew, "setns user");
    if (netns && ::setns(netns.get(), CLONE_NEWNET) != 0) child_fail(ew, "setns net");
    if (options.new_pid_namespace && run_namespace_init(ew) == 0) {
      // The program (forked before the init set its handlers): default dispositions, as every
      // spawned program gets them.
      for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) ::signal(s, SIG_DFL);
    }
    int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    int fds[3] = {options.stdin_fd, options.stdout_fd, options.stderr_fd};
    if (options.controlling_tty >= 0) fds[0] = fds[1] = fds[2] = options.controlling_tty;
    // dup the sources above 2 first so that a source that is itself 0..2 is not clobbered.
    int tmp[3];
    for (int i = 0; i < 3; ++i)
      tmp[i] = ::fcntl(fds[i] >= 0 ? fds[i] : devnull, F_DUPFD_CLOEXEC, 3);
    for (int i = 0; i < 3; ++i) {
      if (tmp[i] < 0 || ::dup2(tmp[i], i) < 0) child_fail(ew, "dup2");
    }
    // Only 0-2 and keep_fds reach the program: descriptors this process inherited without
    // O_CLOEXEC (from whoever started fcvm) close at exec too. (A syscall: async-signal-safe.)
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    for (int fd : options.keep_fds) {
      int flags = ::fcntl(fd, F_GETFD);
      if (flags >= 0) ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
    }
    if (!options.cwd.empty() && ::chdir(options.cwd.c_str()) != 0) child_fail(ew, "chdir");
    ::execve(exe.c_str(), argvp.data(), envp.data());
    child_fail(ew, "exec");
  }
  err_write.reset();
  ChildProcess child;
  child.m_pid = pid;
  child.m_pidfd.reset(pidfd_open(pid));
  if (!child.m_pidfd) {
    int e = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    child.m_pid = 0;
    return fail_errno("pidfd_open", e);
  }
  // The error pipe closes on successful exec (O_CLOEXEC); otherwise it carries errno + step.
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
    std::string step = report.substr(sizeof(int));
    (void)child.wait();
    return fail_errno(fmt::format("start {}: {}", options.argv[0], step), e);
  }
  return child;
}

Result<ChildProcess> ChildProcess::adopt(pid_t pid) {
  ChildProcess child;
  child.m_pidfd.reset(pidfd_open(pid));
  if (!child.m_pidfd) return fail_errno(fmt::format("pidfd_open {}", pid));
  child.m_pid = pid;
  return child;
}

Result<> ChildProcess::signal(int sig) const {
  if (m_pid <= 0 || m_status) return {};
  if (pidfd_send_signal(m_pidfd.get(), sig) != 0 && errno != ESRCH) {
    return fail_errno(fmt::format("signal {} to pid {}", sig, m_pid));
  }
  return {};
}

Result<std::optional<ExitStatus>> ChildProcess::try_wait() {
  if (m_status) return m_status;
  if (m_pid <= 0) return fail(ErrorCode::kInternal, "wait: no process");
  siginfo_t info{};
  if (::waitid(P_PIDFD, static_cast<id_t>(m_pidfd.get()), &info, WEXITED | WNOHANG) != 0) {
    return fail_errno(fmt::format("waitid pid {}", m_pid));
  }
  if (info.si_pid == 0) return std::optional<ExitStatus>{};
  m_status = from_siginfo(info);
  return m_status;
}

Result<std::optional<ExitStatus>> ChildProcess::wait_for(std::chrono::milliseconds timeout) {
  if (m_status) return m_status;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto st = try_wait();
    if (!st || *st) return st;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::optional<ExitStatus>{};
    pollfd p{m_pidfd.get(), POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno != EINTR) return fail_errno("poll pidfd");
  }
}

Result<ExitStatus> ChildProcess::wait() {
  for (;;) {
    auto st = wait_for(std::chrono::hours(24));
    if (!st) return tl::unexpected<Error>(st.error());
    if (*st) return **st;
  }
}

ExitStatus ChildProcess::terminate(std::chrono::milliseconds grace) {
  if (m_status) return *m_status;
  (void)signal(SIGTERM);
  auto st = wait_for(grace);
  if (st && *st) return **st;
  (void)signal(SIGKILL);
  auto final_status = wait();
  return final_status ? *final_status : ExitStatus{false, SIGKILL};
}

namespace {
Result<std::string> drain_pipes(ChildProcess& child, UniqueFd out, UniqueFd err,
                                std::string& err_text, std::chrono::milliseconds timeout) {
  std::string out_text;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out || err) {
    pollfd fds[2] = {{out.get(), POLLIN, 0}, {err.get(), POLLIN, 0}};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      (void)child.signal(SIGKILL);
      return fail(ErrorCode::kTimeout, fmt::format("timed out after {} ms", timeout.count()));
    }
    int r = ::poll(fds, 2, static_cast<int>(left.count()));
    if (r < 0) {
      if (errno == EINTR) continue;
      return fail_errno("poll");
    }
    char buf[4096];
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? out_text : err_text).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        (i == 0 ? out : err).reset();
      }
    }
  }
  return out_text;
}
}  // namespace

Result<CommandOutput> run_capture(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds timeout, pid_t join_namespaces_of) {
  int out_p[2], err_p[2];
  if (::pipe2(out_p, O_CLOEXEC) != 0) return fail_errno("pipe2");
  UniqueFd out_r(out_p[0]), out_w(out_p[1]);
  if (::pipe2(err_p, O_CLOEXEC) != 0) return fail_errno("pipe2");
  UniqueFd err_r(err_p[0]), err_w(err_p[1]);
  SpawnOptions opts;
  opts.argv = argv;
  opts.stdout_fd = out_w.get();
  opts.stderr_fd = err_w.get();
  opts.join_namespaces_of = join_namespaces_of;
  auto child = ChildProcess::spawn(opts);
  if (!child) return tl::unexpected<Error>(child.error());
  out_w.reset();
  err_w.reset();
  CommandOutput result;
  auto out = drain_pipes(*child, std::move(out_r), std::move(err_r), result.err, timeout);
  auto status = child->wait();
  if (!out) return tl::unexpected<Error>(std::move(out.error()).wrap(argv[0]));
  if (!status) return tl::unexpected<Error>(status.error());
  result.out = std::move(*out);
  result.status = *status;
  return result;
}

Result<std::string> run_checked(const std::vector<std::string>& argv,
                                std::chrono::milliseconds timeout, pid_t join_namespaces_of) {
  auto r = run_capture(argv, timeout, join_namespaces_of);
  if (!r) return tl::unexpected<Error>(r.error());
  if (!r->status.exited || r->status.code != 0) {
    auto err = trim(r->err);
    return fail(ErrorCode::kSystem,
                fmt::format("{} failed ({}){}{}", join(argv, " "), r->status.describe(),
                            err.empty() ? "" : ": ", err));
  }
  return std::move(r->out);
}

std::optional<std::string> find_executable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) == 0) return name;
    return std::nullopt;
  }
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
  // Helpers such as ip and nft live in sbin, which a non-root PATH often lacks.
  p += ":/usr/local/sbin:/usr/sbin:/sbin";
  for (auto dir : split(p, ':')) {
    if (dir.empty()) continue;
    auto candidate = std::string(dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

}  // namespace fcvm
