#include "fcvm/sys/process_identity.hpp"

#include <signal.h>

#include "fcvm/sys/host.hpp"
#include "fcvm/util/fs.hpp"

namespace fcvm::sys {

ProcessIdentity ProcessIdentity::of(pid_t pid) {
  ProcessIdentity id;
  auto start = process_start_time(pid);
  if (!start) return id;
  id.pid = pid;
  id.start_time = *start;
  id.boot_id = sys::boot_id();
  return id;
}

bool ProcessIdentity::alive() const {
  if (pid <= 0 || boot_id != sys::boot_id()) return false;
  auto start = process_start_time(pid);
  if (!start || *start != start_time) return false;
  // A zombie has finished: it only waits for its parent to reap it.
  auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  auto close = stat->rfind(')');
  return close == std::string::npos || close + 2 >= stat->size() || (*stat)[close + 2] != 'Z';
}

bool ProcessIdentity::signal_if_alive(int sig) const {
  // The check and the kill are not atomic, but a pid is reused only after the old process was
  // reaped and the whole pid space wrapped: the window is negligible.
  if (!alive()) return false;
  return ::kill(pid, sig) == 0;
}

bool ProcessIdentity::kill_if_alive() const { return signal_if_alive(SIGKILL); }

}  // namespace fcvm::sys
