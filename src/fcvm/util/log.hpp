#pragma once
// Debug log (never the user diagnostic): FCVM_LOG(kDebug, "x={}", x) formats only when the level
// is enabled. The level comes from --log-level or the FCVM_LOG environment variable; output goes
// to stderr or to the file set with set_log_file (a VM's monitor logs into the VM's directory).
#include <fmt/format.h>

#include <string_view>

namespace fcvm::log {

enum class Level { kTrace = 0, kDebug = 1, kInfo = 2, kWarn = 3, kError = 4, kOff = 5 };

Level level();
void set_level(Level level);
bool parse_level(std::string_view text, Level& out);
std::string_view level_name(Level level);
// Reads FCVM_LOG once; call at start-up.
void init_from_env();
// Redirects log lines to fd (borrowed; must outlive logging).
void set_fd(int fd);
void write(Level level, std::string_view component, std::string_view message);

}  // namespace fcvm::log

#define FCVM_LOG(lvl, component, ...)                                                   \
  do {                                                                                  \
    if (::fcvm::log::Level::lvl >= ::fcvm::log::level())                                \
      ::fcvm::log::write(::fcvm::log::Level::lvl, component, fmt::format(__VA_ARGS__)); \
  } while (0)
