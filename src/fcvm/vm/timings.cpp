#include "fcvm/vm/timings.hpp"

#include <fcntl.h>

#include <nlohmann/json.hpp>

#include "fcvm/util/log.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fcvm::vm {
namespace {
int64_t realtime_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
// Wall clock, not monotonic: the zero is shared with the monitor process (its --t0-ns).
int64_t g_start_ns = realtime_ns();
}  // namespace

void mark_process_start(int64_t inherited_ns) {
  g_start_ns = inherited_ns > 0 ? inherited_ns : realtime_ns();
}

int64_t process_start_ns() { return g_start_ns; }

double ms_since_process_start() { return static_cast<double>(realtime_ns() - g_start_ns) / 1e6; }

Timings::Timings(const std::string& path) {
  if (!path.empty()) {
    m_fd.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  }
}

void Timings::mark(const std::string& event, const std::string& detail) {
  double ms = ms_since_process_start();
  FCVM_LOG(kInfo, "timing", "{:9.1f} ms {} {}", ms, event, detail);
  if (!m_fd) return;
  nlohmann::json j = {{"event", event}, {"ms", ms}};
  if (!detail.empty()) j["detail"] = detail;
  (void)write_all(m_fd.get(), j.dump() + "\n");
}

void Timings::mark_guest(const std::string& event, long long guest_uptime_ms) {
  double ms = ms_since_process_start();
  FCVM_LOG(kInfo, "timing", "{:9.1f} ms {} (guest uptime {} ms)", ms, event, guest_uptime_ms);
  if (!m_fd) return;
  nlohmann::json j = {{"event", event}, {"ms", ms}, {"guest_uptime_ms", guest_uptime_ms}};
  (void)write_all(m_fd.get(), j.dump() + "\n");
}

}  // namespace fcvm::vm
