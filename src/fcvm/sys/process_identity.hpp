#pragma once
// A process as it can be persisted: pid + start time (clock ticks since boot, /proc/PID/stat
// field 22) + boot id. A stored pid is only ever signalled after all three match, so a recycled
// pid or a reboot can never make fcvm kill a stranger.
#include <sys/types.h>

#include <string>

#include "fcvm/util/result.hpp"

namespace fcvm::sys {

struct ProcessIdentity {
  pid_t pid = 0;
  unsigned long long start_time = 0;
  std::string boot_id;

  bool empty() const { return pid <= 0; }
  // Identity of a running process (empty when it is gone).
  static ProcessIdentity of(pid_t pid);
  // True while the very same process runs (not a zombie).
  bool alive() const;
  // SIGKILL the process if (and only if) it is still the same one; true if it was signalled.
  bool kill_if_alive() const;
  // Sends sig under the same condition.
  bool signal_if_alive(int sig) const;
};

}  // namespace fcvm::sys
