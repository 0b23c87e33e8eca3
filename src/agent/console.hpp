#pragma once
// The agent's diagnostics: one line per step on /dev/console ("fc-agent: [  4.213] ..."), which
// lands in the VM's console log on the host. The timestamp is the guest's uptime in seconds, like
// the kernel's own lines around it. Not the protocol: important lines are also sent to the host
// as `log` messages by the caller.
#include <fmt/format.h>

#include <cstdint>
#include <string_view>
#include <utility>

namespace fcvm::agent {

// Milliseconds since boot (CLOCK_BOOTTIME: keeps counting across suspend, unaffected by the
// clock the plan sets).
int64_t uptime_ms();

// Opens /dev/console for the diagnostics; without it (tests on the host) lines go to stderr.
void open_console(bool use_dev_console);

void say(std::string_view line);

template <typename... Args>
void sayf(fmt::format_string<Args...> format, Args&&... args) {
  say(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace fcvm::agent
