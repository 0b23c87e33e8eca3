#pragma once
// `fcvm top`: the container's processes, listed in the guest OS by a short sh script (the guest
// has no ps): crun's list of the container's pids (podman top with --guest-pull), then for each
// its user, pid in the container, parent, CPU time and command line from /proc.
#include <string>

namespace fcvm::vm {

// The script `fcvm top` runs in the guest OS (sh -c SCRIPT); it prints a table with a header.
std::string top_script();

}  // namespace fcvm::vm
