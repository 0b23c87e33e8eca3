#pragma once
// Start-up milestones of one run, as JSON lines {"event":..., "ms":...} (ms since the fcvm
// process started), written to a file when asked for (benchmarks) and to the debug log.
#include <chrono>
#include <cstdint>
#include <string>

#include "fcvm/util/unique_fd.hpp"

namespace fcvm::vm {

// Call first thing in main(): the zero of every timing. A monitor inherits the zero of the command
// that started it (inherited_ns, wall-clock ns; 0: now).
void mark_process_start(int64_t inherited_ns = 0);
int64_t process_start_ns();
double ms_since_process_start();

class Timings {
 public:
  explicit Timings(const std::string& path);
  void mark(const std::string& event, const std::string& detail = {});
  // A guest milestone: guest uptime in ms is recorded beside the host time.
  void mark_guest(const std::string& event, long long guest_uptime_ms);

 private:
  UniqueFd m_fd;
};

}  // namespace fcvm::vm
