#include "agent/power.hpp"

#include <sys/reboot.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/console.hpp"

namespace fcvm::agent {

void power_off(bool really, const std::string& reason) {
  sayf("power off: {}", reason);
  // Container layers and logs live on the VM's disk: flush them before the reset.
  ::sync();
  if (!really) return;
  ::reboot(RB_AUTOBOOT);
  sayf("reboot: {}; trying power-off", std::strerror(errno));
  ::reboot(RB_POWER_OFF);
  sayf("power-off: {}; waiting for the host to end the VM", std::strerror(errno));
  for (;;) ::pause();
}

}  // namespace fcvm::agent
