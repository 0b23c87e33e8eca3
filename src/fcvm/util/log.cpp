#include "fcvm/util/log.hpp"

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>

namespace fcvm::log {
namespace {
std::atomic<Level> g_level{Level::kWarn};
std::atomic<int> g_fd{2};
constexpr const char* k_names[] = {"trace", "debug", "info", "warn", "error", "off"};
}  // namespace

Level level() { return g_level.load(std::memory_order_relaxed); }
void set_level(Level l) { g_level.store(l); }
void set_fd(int fd) { g_fd.store(fd); }

std::string_view level_name(Level l) {
  auto i = static_cast<int>(l);
  return i >= 0 && i <= static_cast<int>(Level::kOff) ? k_names[i] : "info";
}

bool parse_level(std::string_view text, Level& out) {
  for (int i = 0; i <= static_cast<int>(Level::kOff); ++i) {
    if (text == k_names[i]) {
      out = static_cast<Level>(i);
      return true;
    }
  }
  return false;
}

void init_from_env() {
  const char* v = std::getenv("FCVM_LOG");
  Level l;
  if (v != nullptr && parse_level(v, l)) set_level(l);
}

void write(Level lvl, std::string_view component, std::string_view message) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm tm_utc{};
  gmtime_r(&ts.tv_sec, &tm_utc);
  auto line = fmt::format("{:02}:{:02}:{:02}.{:03} {:5} [{}] {} {}\n", tm_utc.tm_hour,
                          tm_utc.tm_min, tm_utc.tm_sec, ts.tv_nsec / 1000000,
                          k_names[static_cast<int>(lvl)], getpid(), component, message);
  // One write(2) per line keeps lines whole when several processes share the file.
  ssize_t ignored = ::write(g_fd.load(), line.data(), line.size());
  (void)ignored;
}

}  // namespace fcvm::log
