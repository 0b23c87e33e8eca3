#pragma once
// VM lifecycle operations over the store and the per-VM monitor: create, start, stop, remove,
// reconcile (find what a killed process left and clean it), and the control-socket client.
#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/agent_proto/frame.hpp"
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

// Starts the monitor for a record (in its own session). `fresh`: the VM's first start (a failure
// then removes it entirely). `ready` yields the monitor's ready line. The caller either waits for
// the process (foreground run) or detach()es it: the monitor outlives the command.
struct MonitorProcess {
  ChildProcess process;
  UniqueFd ready;
};
Result<MonitorProcess> spawn_monitor(Context& ctx, const state::VmRecord& rec, bool fresh,
                                     bool wait_attach = false);
// Reads the ready line: ok, or the monitor's error.
Result<> wait_ready(int ready_fd, const state::VmRecord& rec);

// A record whose monitor is gone although it says it runs: kill what is left by identity, remove
// sockets, mark it exited (or delete it if it was auto-remove). Returns the record, or nullopt
// when it was deleted.
Result<std::optional<state::VmRecord>> reconcile(state::VmStore& store, state::VmRecord rec);
Result<std::vector<state::VmRecord>> list_vms(state::VmStore& store);

bool is_active(const state::VmRecord& rec);  // starting, running or stopping
Result<> stop_vm(state::VmStore& store, const state::VmRecord& rec, int timeout_s);
Result<> start_vm(Context& ctx, state::VmStore& store, const state::VmRecord& rec);
Result<> remove_vm(state::VmStore& store, const state::VmRecord& rec, bool force);

// A connection to a VM's monitor (DIR/control.sock), speaking agent_proto framing.
class ControlClient {
 public:
  static Result<ControlClient> connect(const state::VmRecord& rec,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(5));
  Result<> send(const nlohmann::json& msg);
  Result<> send_frame(agent_proto::Kind kind, uint32_t stream, std::string_view payload);
  // The next frame; kProtocol error on EOF.
  Result<agent_proto::Frame> read();
  // Reads what is available (call when fd() is readable): copies stdout/stderr frames to our
  // fds 1 and 2 and returns the control messages. An empty optional: the monitor hung up.
  Result<std::optional<std::vector<nlohmann::json>>> pump();
  int fd() const { return m_fd.get(); }

 private:
  UniqueFd m_fd;
  agent_proto::Decoder m_decoder;
};

}  // namespace fcvm::vm
