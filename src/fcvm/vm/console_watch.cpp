#include "fcvm/vm/console_watch.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>

#include "fcvm/util/strings.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::vm {
namespace {
// What Linux prints when a CPU stops making progress or the kernel gives up.
// Each starts the kernel's message (after the printk time).
constexpr std::array<std::string_view, 6> k_hang_markers = {
    "watchdog: BUG: soft lockup",
    "NMI watchdog: Watchdog detected hard LOCKUP",
    "Watchdog detected hard LOCKUP",
    "rcu: INFO: rcu_sched self-detected stall",
    "rcu: INFO: rcu_preempt self-detected stall",
    "Kernel panic - not syncing",
};
// The first words of every line the guest's init (scripts/guest/fc-init) and agent print.
constexpr std::array<std::string_view, 2> k_userspace_markers = {"fc-init: ", "fc-agent: "};
}  // namespace

std::optional<std::string> ConsoleWatch::scan(std::string_view text, bool* userspace) {
  size_t start = 0;
  for (;;) {
    auto nl = text.find('\n', start);
    if (nl == std::string_view::npos) return std::nullopt;
    auto line = trim(text.substr(start, nl - start));
    start = nl + 1;
    if (userspace != nullptr && !*userspace) {
      for (auto marker : k_userspace_markers) {
        if (line.rfind(marker, 0) == 0) *userspace = true;
      }
    }
    // Only the kernel's own lines, "[  SECONDS.MICROS] message": programs in the guest that
    // print to the console (the agent logs the commands it runs) cannot trigger it.
    if (line.empty() || line.front() != '[') continue;
    auto close = line.find("] ");
    if (close == std::string_view::npos) continue;
    auto message = line.substr(close + 2);
    for (auto marker : k_hang_markers) {
      if (message.rfind(marker, 0) == 0) return std::string(line);
    }
  }
}

std::optional<std::string> ConsoleWatch::poll() {
  if (m_reported) return std::nullopt;
  UniqueFd fd(::open(m_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  char buf[16384];
  for (;;) {
    ssize_t n = ::pread(fd.get(), buf, sizeof buf, m_offset);
    if (n <= 0) break;
    m_offset += n;
    m_partial.append(buf, static_cast<size_t>(n));
    auto hit = scan(m_partial, &m_userspace);
    auto last_nl = m_partial.rfind('\n');
    m_partial.erase(0, last_nl == std::string::npos ? 0 : last_nl + 1);
    if (m_partial.size() > 4096) m_partial.erase(0, m_partial.size() - 4096);
    if (hit) {
      m_reported = true;
      return hit;
    }
  }
  return std::nullopt;
}

void ConsoleWatch::restart() {
  m_offset = 0;
  m_partial.clear();
  m_reported = m_userspace = false;
}

}  // namespace fcvm::vm
