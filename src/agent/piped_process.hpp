#pragma once
// PipedProcess: a child process whose stdout and stderr come back through non-blocking pipes and
// whose stdin is optionally a pipe fed by the agent. It owns the ChildProcess (killed and reaped
// on destruction) and the agent's ends of the pipes. The agent's loop polls output_fd(),
// stdin_fd() and pidfd() and calls the matching methods; nothing here blocks.
//
// Started on a terminal (start_on_terminal), the "pipes" are the pseudo-terminal's master: all
// output comes through output_fd(0) (a terminal has no separate stderr), stdin is written to the
// master, and closing stdin types the terminal's end-of-file character instead (see close_stdin).
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "agent/terminal.hpp"
#include "fcvm/util/child_process.hpp"
#include "fcvm/util/result.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::agent {

class PipedProcess {
 public:
  // options.stdout_fd/stderr_fd/stdin_fd are replaced by the pipes (stdin: /dev/null unless
  // pipe_stdin).
  static Result<std::unique_ptr<PipedProcess>> start(SpawnOptions options, bool pipe_stdin);
  // The process leads a new session on a new pseudo-terminal of this size (terminal.hpp).
  static Result<std::unique_ptr<PipedProcess>> start_on_terminal(const SpawnOptions& options,
                                                                 TerminalSize size);
  // An OCI runtime (crun run/exec with a terminal and --console-socket socket_path in
  // options.argv) creates the process's terminal and hands its master over the socket: the agent
  // holds it as start_on_terminal's master (all output read to its end, resizes reaching the
  // process), where crun would otherwise relay it and stop at the process's exit. Waits up to
  // `timeout` for the hand-over; the runtime's own messages come as output 1. A runtime that ends
  // (or is killed at the timeout) without handing over leaves a process without a terminal, whose
  // exit status and messages tell why.
  static Result<std::unique_ptr<PipedProcess>> start_with_console_socket(
      SpawnOptions options, const std::string& socket_path, std::chrono::milliseconds timeout);

  pid_t pid() const { return m_child.pid(); }
  // The pidfd while the process runs, -1 once its status is known.
  int pidfd() const { return m_child.running() ? m_child.pidfd() : -1; }
  // Reaps the process if it has exited (call when pidfd() is readable).
  void reap();
  const std::optional<ExitStatus>& status() const { return m_status; }
  bool exited() const { return m_status.has_value(); }
  Result<> signal(int sig) const { return m_child.signal(sig); }

  bool on_terminal() const { return m_terminal.valid(); }
  // Terminal only: a new window size.
  Result<> resize(TerminalSize size) const;
  // Terminal only: the foreground process group (the job a ^C would interrupt); 0 if unknown.
  pid_t foreground_group() const;

  // 0: stdout, 1: stderr. -1 once the pipe reached end of file.
  int output_fd(int index) const { return m_out[index].get(); }
  bool outputs_closed() const { return !m_out[0] && !m_out[1]; }
  // Reads up to max bytes from an output pipe. Empty when nothing is available now; at end of
  // file (or on an error) the pipe is closed and output_fd() becomes -1.
  std::string read_output(int index, size_t max);
  // Forgets the output pipes (their writers may be grandchildren that outlive the process).
  void close_outputs();

  // Stdin: data is queued and written when stdin_fd() polls writable; close_stdin() closes it
  // once the queue has drained. -1 when there is no stdin pipe (any more). On a terminal,
  // close_stdin() queues the end-of-file character (VEOF, ^D) and keeps the master open: it ends
  // the input of a program that reads lines (cat, a shell); at the start of a line one is typed,
  // after a partial line two (the first only hands the partial line to the reader). A program
  // that put the terminal in raw mode reads the byte as data.
  int stdin_fd() const { return m_in.get(); }
  bool stdin_pending() const { return !m_in_queue.empty() || m_close_in; }
  void queue_stdin(std::string_view data);
  void close_stdin();
  void write_stdin();

 private:
  ChildProcess m_child;
  std::optional<ExitStatus> m_status;
  UniqueFd m_out[2];
  UniqueFd m_in;
  std::string m_in_queue;
  bool m_close_in = false;
  UniqueFd m_terminal;          // the pty master, for ioctls (a third fd of it: m_out[0], m_in)
  bool m_at_line_start = true;  // terminal: the last byte typed ended a line (or none was)
};

}  // namespace fcvm::agent
