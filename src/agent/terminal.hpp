#pragma once
// Pseudo-terminals for tty exec sessions. The agent holds the master; the slave becomes the
// stdin, stdout, stderr and controlling terminal of a child that leads a new session, so the
// child (a shell, or `podman exec -t`) has job control, gets SIGWINCH when the window changes and
// SIGHUP when the terminal goes away. Only system calls: no name service, which the static agent
// does not have.
#include <cstdint>

#include "fcvm/util/child_process.hpp"
#include "fcvm/util/result.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::agent {

struct TerminalSize {
  uint16_t rows = 0;  // 0x0: unknown, as a new terminal starts
  uint16_t cols = 0;
};

struct Terminal {
  UniqueFd master;  // non-blocking, O_CLOEXEC
  UniqueFd slave;   // O_CLOEXEC, O_NOCTTY: only spawn_on_terminal makes it a controlling terminal
};

// A new pseudo-terminal pair with the given window size (none when 0x0).
Result<Terminal> open_terminal(TerminalSize size);

// TIOCSWINSZ on a terminal (master or slave): the kernel sends SIGWINCH to its foreground group.
Result<> set_terminal_size(int fd, TerminalSize size);

// The terminal's end-of-file character (VEOF, normally ^D).
char terminal_eof_char(int fd);

// Starts options.argv as the leader of a new session whose controlling terminal is `slave` (also
// its fds 0, 1 and 2 (SpawnOptions::controlling_tty): options' stdio fds are ignored). The slave is
// borrowed: the caller closes its copy after this returns, so that the master reads end of file
// (EIO) once the session's processes have closed theirs.
Result<ChildProcess> spawn_on_terminal(const SpawnOptions& options, int slave);

}  // namespace fcvm::agent
