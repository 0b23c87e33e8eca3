#pragma once
// VM lifecycle operations over the store and the per-VM monitor: create, start, stop, remove,
// reconcile (find what a killed process left and clean it), and the control-socket client.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/state/vm_store.hpp"
#include "fcvm/util/child_process.hpp"
#include "fcvm/util/unique_fd.hpp"
#include "fcvm/vm/context.hpp"
#include "fcvm/vm/options.hpp"

namespace fcvm::vm {

Result<state::VmStore> open_store(Context& ctx);

// Validated options -> a new record (status created) and its directory. A taken name is
// kAlreadyExists; nothing is left behind on failure.
// `snapshot`: a clone, restored from that snapshot (id) on its first start.
Result<state::VmRecord> create_vm(Context& ctx, state::VmStore& store, const RunOptions& options,
                                  bool auto_remove, const std::string& snapshot = {});

// Starts the monitor for a record (in its own session), running this same executable in its
// monitor mode (monitor.hpp). `ready` yields the monitor's ready line. The caller either waits for
// the process (foreground run) or detach()es it: the monitor outlives the command.
struct MonitorProcess {
  ChildProcess process;
  UniqueFd ready;
};
struct SpawnMonitorOptions {
  bool fresh = false;        // the VM's first start (a failure then removes it entirely)
  bool wait_attach = false;  // a foreground client will attach: the container waits for it
  std::string timings_file{};
  bool hold = false;  // with wait_attach: the wait has no time limit (MonitorLaunch::hold)
};
Result<MonitorProcess> spawn_monitor(Context& ctx, const state::VmRecord& rec,
                                     const SpawnMonitorOptions& options);
// Reads the ready line: ok, or the monitor's error.
Result<> wait_ready(int ready_fd, const state::VmRecord& rec);

// A record whose monitor is gone although it says it runs: kill what is left by identity, remove
// sockets, mark it exited (or delete it if it was auto-remove). Returns the record, or nullopt
// when it was deleted.
Result<std::optional<state::VmRecord>> reconcile(state::VmStore& store, state::VmRecord rec);
Result<std::vector<state::VmRecord>> list_vms(state::VmStore& store);
// A VM by name, id or unique id prefix, reconciled (a dead monitor's leftovers cleaned first);
// kNotFound names `ref`.
Result<state::VmRecord> find_vm(state::VmStore& store, const std::string& ref);
// The sockets and runtime files a VM's monitor, network helper and VMM leave in its directory.
void remove_runtime_files(const state::VmRecord& rec);

bool is_active(const state::VmRecord& rec);  // starting, running or stopping
Result<> stop_vm(state::VmStore& store, const state::VmRecord& rec, int timeout_s);
Result<> start_vm(Context& ctx, state::VmStore& store, const state::VmRecord& rec);
// start_vm's checks and its monitor, for a caller that attaches (wait_attach) or waits itself.
Result<MonitorProcess> begin_start(Context& ctx, state::VmStore& store, const state::VmRecord& rec,
                                   bool wait_attach);
Result<> remove_vm(state::VmStore& store, const state::VmRecord& rec, bool force);
// stop_vm (when it runs) then start_vm.
Result<> restart_vm(Context& ctx, state::VmStore& store, const state::VmRecord& rec, int timeout_s);
// A signal name as the agent protocol spells it ("KILL", "SIGTERM", "term", "15").
bool is_signal_name(const std::string& name);
// A signal for the container of a running VM ("KILL", "SIGTERM", "15"; checked by the caller).
Result<> signal_container(state::VmStore& store, const state::VmRecord& rec,
                          const std::string& signal);
// Blocks until the VM is not running any more; its exit code (nullopt: it never exited with one,
// e.g. created and never started, or it failed). kNotFound when it was removed meanwhile.
Result<std::optional<int64_t>> wait_vm(state::VmStore& store, const state::VmRecord& rec);
// A new time-to-live counted from now (0: none): the VM's monitor stops it then (a running VM's
// monitor is told; a stopped VM keeps it for its next start). Returns the record as it is now.
Result<state::VmRecord> set_ttl(state::VmStore& store, const state::VmRecord& rec, int64_t seconds);
// Pause or unpause a running VM's VMM (through its monitor).
Result<> pause_vm(state::VmStore& store, const state::VmRecord& rec, bool pause);
// A new name: validated, free (kAlreadyExists names it), written by the monitor while the VM runs.
Result<state::VmRecord> rename_vm(state::VmStore& store, const state::VmRecord& rec,
                                  const std::string& name);
// The error of a write that hit the name's uniqueness, worded for that name.
Error name_taken(const Error& error, const std::string& name);

}  // namespace fcvm::vm
