#pragma once
// ChildProcess: owns one child process through a pidfd. The destructor kills (SIGKILL) and reaps
// the child unless it was detach()ed or already waited for, so a process can never outlive the
// object that started it by accident. Spawning uses fork+exec with everything the child needs
// prepared before fork(): the child runs only async-signal-safe calls.
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/util/result.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm {

struct SpawnOptions {
  std::vector<std::string> argv{};
  // Extra "K=V" entries appended to (and overriding) the inherited environment.
  std::vector<std::string> env{};
  bool clear_env = false;
  std::string cwd{};
  // Descriptors for the child's 0/1/2; -1 means /dev/null. Borrowed, not consumed.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  // Extra descriptors kept open in the child at the same numbers (O_CLOEXEC cleared).
  std::vector<int> keep_fds{};
  bool new_session = false;  // setsid(): the child leaves our terminal's signals
  // A terminal (pty slave) that becomes the child's controlling terminal and its fds 0, 1 and 2:
  // implies new_session; stdin_fd/stdout_fd/stderr_fd are ignored. Borrowed.
  int controlling_tty = -1;
  bool die_with_parent = true;  // PR_SET_PDEATHSIG(SIGKILL)
  // The program runs in a new PID namespace whose init (PID 1) is a small process of ours that
  // stays root, dies with us (die_with_parent) and takes the namespace with it: so a program that
  // changes its credentials (which clears its own parent-death signal) still cannot outlive us.
  // The init forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the program and
  // exits with its exit code (128 + signal when it was killed). pid() is the init's.
  bool new_pid_namespace = false;
  // Join the user (if different from ours) and network namespaces of this process before exec.
  pid_t join_namespaces_of = 0;
};

struct ExitStatus {
  bool exited = false;  // normal exit (code valid) vs killed by a signal
  int code = 0;         // exit code, or the signal number when !exited
  // Shell convention: code, or 128+signal.
  int shell_code() const { return exited ? code : 128 + code; }
  std::string describe() const;
};

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;

  static Result<ChildProcess> spawn(const SpawnOptions& options);
  // Takes ownership of a child we forked ourselves (it must be our child and not yet reaped).
  static Result<ChildProcess> adopt(pid_t pid);

  pid_t pid() const { return m_pid; }
  int pidfd() const { return m_pidfd.get(); }
  bool running() const { return m_pid > 0 && !m_status; }

  Result<> signal(int sig) const;
  // Non-blocking: the status if the child has exited.
  Result<std::optional<ExitStatus>> try_wait();
  // Blocks until the child exits or the timeout passes (nullopt on timeout).
  Result<std::optional<ExitStatus>> wait_for(std::chrono::milliseconds timeout);
  Result<ExitStatus> wait();
  // SIGTERM, wait up to grace, then SIGKILL and reap.
  ExitStatus terminate(std::chrono::milliseconds grace);
  // Give up ownership: the process keeps running and is not reaped by us.
  pid_t detach();

 private:
  void kill_and_reap();
  pid_t m_pid = 0;
  UniqueFd m_pidfd;
  std::optional<ExitStatus> m_status;
};

struct CommandOutput {
  ExitStatus status;
  std::string out;
  std::string err;
};

// Runs argv to completion, capturing stdout and stderr (stdin is /dev/null). Fails only when the
// command cannot be started or the timeout passes; a non-zero exit is in the result.
Result<CommandOutput> run_capture(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(60),
                                  pid_t join_namespaces_of = 0);

// Like run_capture, but a non-zero exit is an error naming the command and carrying its stderr.
Result<std::string> run_checked(const std::vector<std::string>& argv,
                                std::chrono::milliseconds timeout = std::chrono::seconds(60),
                                pid_t join_namespaces_of = 0);

// Searches PATH for an executable; nullopt when absent.
std::optional<std::string> find_executable(const std::string& name);

}  // namespace fcvm
