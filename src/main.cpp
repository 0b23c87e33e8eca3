#include "fcvm/cli/main.hpp"

#include <cstring>

#include "fcvm/vm/monitor.hpp"

// A VM's monitor is this binary in its monitor mode; everything else is the CLI.
int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], fcvm::vm::k_monitor_command) == 0) {
    return fcvm::vm::monitor_main(argc, argv);
  }
  return fcvm::cli::main(argc, argv);
}
