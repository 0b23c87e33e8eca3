#pragma once
#include <string>

namespace fcvm::agent {

// Ends the VM: sync(), then reboot(RB_AUTOBOOT). The kernel is booted with reboot=t or reboot=k
// and the VMM treats the reset as the end of the VM (QEMU -no-reboot; Firecracker exits on the
// keyboard-controller reset). Returns only when `really` is false (tests on the host) or when the
// reboot call failed, in which case it never returns either: the agent then sleeps forever so that
// PID 1 does not exit and panic the kernel, and the host's timeout takes over.
void power_off(bool really, const std::string& reason);

}  // namespace fcvm::agent
