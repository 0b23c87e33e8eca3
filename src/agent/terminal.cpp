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

namespace fcvm::agent {
namespace {

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
  SpawnOptions opts = options;
  opts.controlling_tty = slave;
  return ChildProcess::spawn(opts);
}

}  // namespace fcvm::agent
