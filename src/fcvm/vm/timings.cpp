#include "fcvm/vm/timings.hpp"

#include <fcntl.h>

#include <nlohmann/json.hpp>

#include "fcvm/util/log.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fcvm::vm {
namespace {
std::chrono::steady_clock::time_point g_start = std::chrono::steady_clock::now();
}

void mark_process_start() { g_start = std::chrono::steady_clock::now(); }

double ms_since_process_start() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - g_start)
      .count();
}

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
