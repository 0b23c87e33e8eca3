#pragma once
#include <string>
#include <vector>

#include "fcvm/state/vm_store.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::vm {

// Foreground `run`: attaches to the VM's monitor, copies the container's stdout/stderr to ours,
// turns SIGINT/SIGTERM/SIGHUP into a stop (a second one kills the VM) and returns the container's
// exit code. ready_fd carries the monitor's start-up failure, if any.
Result<int> attach_foreground(const state::VmRecord& rec, int ready_fd);

struct ExecRequest {
  std::vector<std::string> argv;
  std::vector<std::string> env{};
  std::string workdir{};
  std::string user{};
  bool interactive = false;  // forward our stdin
  bool tty = false;
  bool in_vm = false;  // run in the guest OS instead of the container
};

// `fcvm exec`: runs a command through the VM's monitor and agent; returns its exit code.
Result<int> exec_in_vm(const state::VmRecord& rec, const ExecRequest& request);

}  // namespace fcvm::vm
