#include <cstring>

#include "fcvm/shim/main.hpp"
#include "fcvm/vm/monitor.hpp"

// containerd-shim-fcvm-v2; like fcvm, it is also the monitor of the VMs it starts.
int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], fcvm::vm::k_monitor_command) == 0) {
    return fcvm::vm::monitor_main(argc, argv);
  }
  return fcvm::shim::shim_main(argc, argv);
}
