#pragma once
// The per-VM monitor: the fcvm binary in an internal mode (`fcvm __monitor ID`), in its own
// session, started by `run` and `start`. It owns the VM for its whole life: the VMM, the network
// helper and namespaces, the agent channel and the control socket (DIR/control.sock) through which
// other fcvm commands attach, exec and stop. It records every state change in the store and
// cleans up when the VM ends. Because every process it starts dies with it (PDEATHSIG), a
// `kill -9` of the monitor leaves only files and a row, which `ls`/`rm` reconcile.
//
// Lifecycle of one run of the monitor:
//   starting: disk -> network -> VMM -> agent hello -> plan        (ready pipe: "error: ..." on
//   failure) running:  agent said ready                                     (ready pipe: "ok")
//   stopping: a stop request, SIGTERM, or the last attached client of an auto-remove VM left
//   exited:   container exit code (or the error) recorded; auto-remove VMs are deleted
#include <string>

#include "fcvm/vm/context.hpp"

namespace fcvm::vm {

// Runs the VM with this id to its end. ready_fd (-1: none) receives one line: "ok" once the
// container runs, or "error: MESSAGE" if it never gets there. wait_attach: a foreground run will
// attach; the container starts only once it has (or 30 s passed), so that it sees all output.
// Returns the process exit code.
int monitor_main(Context& ctx, const std::string& id, int ready_fd, bool fresh, bool wait_attach);

}  // namespace fcvm::vm
