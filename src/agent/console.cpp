#include "agent/console.hpp"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "fcvm/util/unique_fd.hpp"

namespace fcvm::agent {
namespace {
// The console for the whole life of the process (never closed: say() may run until power-off).
UniqueFd g_console;
}  // namespace

int64_t uptime_ms() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void open_console(bool use_dev_console) {
  if (!use_dev_console) return;
  // O_NOCTTY: the console must not become the agent's controlling terminal (a hangup on it
  // would then signal the agent).
  g_console.reset(::open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC));
}

void say(std::string_view line) {
  auto ms = uptime_ms();
  auto text = fmt::format("fc-agent: [{:5}.{:03}] {}\n", ms / 1000, ms % 1000, line);
  int fd = g_console ? g_console.get() : STDERR_FILENO;
  // One write per line keeps lines whole next to the kernel's; a console error is not ours to
  // report anywhere.
  ssize_t ignored = ::write(fd, text.data(), text.size());
  (void)ignored;
}

}  // namespace fcvm::agent
