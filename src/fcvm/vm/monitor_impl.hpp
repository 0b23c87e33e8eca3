#pragma once
// The monitor's state and its concerns, one file each (private to vm/):
//   monitor.cpp           run(), the event loop, phases, deadlines, stop, teardown
//   monitor_ready.cpp     one boot (again after a hung first boot), the readiness gate's
//                         verdict, snapshots
//   monitor_main.cpp      the process: argv and main
//   monitor_agent.cpp     the conversation with fc-agent (agent_proto's codec only)
//   monitor_control.cpp   control-socket requests (control_proto.hpp) from clients
//   monitor_volumes.cpp   volumes while the VM runs and after it ended
//
// Phases (they only move forward; monitor.hpp draws the life of one run):
//   kSettingUp  disk, network, VMM (setup.cpp)
//   kBooting    the VMM runs; waiting for the agent's hello (bounded by the boot deadline)
//   kStarting   hello received; the plan is sent (once a foreground client attached)
//   kRunning    the container runs (ready once the readiness gate passed)
//   kStopping   a stop is under way (request, signal, failure, attached client gone)
//   kEnding     the container exited or the VM failed; the guest powers off (bounded)
// The VMM's exit ends the loop from any phase; teardown then records the end.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/agent_proto/frame.hpp"
#include "fcvm/readiness/gate_runner.hpp"
#include "fcvm/state/snapshot_store.hpp"
#include "fcvm/state/vm_store.hpp"
#include "fcvm/util/unique_fd.hpp"
#include "fcvm/vm/console_watch.hpp"
#include "fcvm/vm/container_log.hpp"
#include "fcvm/vm/context.hpp"
#include "fcvm/vm/control_proto.hpp"
#include "fcvm/vm/control_server.hpp"
#include "fcvm/vm/events.hpp"
#include "fcvm/vm/monitor.hpp"
#include "fcvm/vm/restart.hpp"
#include "fcvm/vm/setup.hpp"
#include "fcvm/vm/timings.hpp"

namespace fcvm::vm {

enum class Phase { kSettingUp, kBooting, kStarting, kRunning, kStopping, kEnding };
std::string_view phase_name(Phase p);

class Monitor {
 public:
  using Clock = std::chrono::steady_clock;
  // (How long the guest may take to answer at all is the VM's --boot-timeout.)
  // One attempt of connect_channel (a vsock handshake under nesting takes ~100 ms).
  static constexpr std::chrono::milliseconds k_agent_connect_slice{500};
  // A channel that closed under a running guest is connected again within this time. A failed
  // attempt before then is not an error: the VMM may be on its way out, and its exit status is
  // what the record should say.
  static constexpr std::chrono::seconds k_reconnect_timeout{15};
  // How long the guest may take to power off once its container ended.
  static constexpr std::chrono::seconds k_poweroff_timeout{15};
  // After the container's own stop timeout: the agent's SIGKILL and the guest's power-off.
  static constexpr std::chrono::seconds k_stop_margin{20};
  // A foreground run's container waits this long for its client to attach.
  static constexpr std::chrono::seconds k_attach_timeout{30};
  // A guest whose kernel reported a hang gets this long to recover before its boot fails.
  static constexpr std::chrono::seconds k_hang_grace{45};

  Monitor(Context& ctx, state::VmStore& store, state::VmRecord record, MonitorLaunch launch,
          int ready_fd);
  int run();
  // How this run ended, for the restart policy (after run()).
  RunOutcome outcome() const;
  // After an unexpected exception: records it and tears the VM down.
  void abort(Error why);

 private:
  // monitor.cpp
  void boot_and_run();
  bool retry_after_hang();
  void watch_console();
  void connect_channel();
  void loop();
  bool end_of_vmm();
  void check_deadlines();
  void teardown();
  void save();
  void advance(Phase p);
  void publish(EventType type, std::string detail = {}, std::optional<int> exit_code = {});
  void record_error(Error e);
  void report_ready(const std::string& line);
  void begin_stop(int timeout_s);
  void on_signal();
  std::string console_tail() const;
  void gate_tick();
  void on_gate_verdict();
  void gate_passed();
  bool save_snapshot_on_ready();
  Result<state::SnapshotRecord> snapshot(const std::string& name, bool then_stop);
  // monitor_agent.cpp
  Result<> on_agent_bytes();
  Result<> on_agent_frame(const agent_proto::Frame& frame);
  Result<> on_agent_control(const std::string& payload);
  void on_agent_exit(uint32_t stream, int code);
  void send_agent(const std::string& control);
  void send_agent_frame(agent_proto::Kind kind, uint32_t stream, std::string_view payload);
  void maybe_send_plan();
  uint32_t start_guest_exec(agent_proto::Exec exec);
  Result<int> run_in_guest(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);
  // monitor_control.cpp
  void on_client_frame(ControlConnection& c, const agent_proto::Frame& frame);
  void on_request(ControlConnection& c, control::Request request);
  void on_client_gone(ControlConnection& c);
  void log_dropped_output(const ControlConnection& c) const;
  void reply(ControlConnection& c, const control::Message& m);
  ControlConnection* client_for_stream(uint32_t stream);
  bool attached_client() const;
  // monitor_volumes.cpp
  Result<size_t> sync_volumes_live();
  void check_volume_servers();
  void write_back_volumes();

  Context& m_ctx;
  state::VmStore& m_store;
  state::VmRecord m_rec;
  MonitorLaunch m_launch;
  UniqueFd m_ready_fd;
  Phase m_phase = Phase::kSettingUp;
  Timings m_timings;
  std::unique_ptr<VmResources> m_vm;
  std::optional<ControlServer> m_control;
  UniqueFd m_log_fd;
  std::unique_ptr<ContainerLogWriter> m_log;
  agent_proto::Decoder m_agent_decoder;
  bool m_channel_open = false;
  bool m_reconnect = false;  // the channel closed under a live guest: connect again
  Clock::time_point m_reconnect_deadline;
  bool m_hello = false;             // the agent answered (a stop goes through it from then on)
  bool m_plan_pending = false;      // hello received; the plan waits for a foreground client
  bool m_booted_published = false;  // hold: event `booted` went out
  // run -i: what the attached client typed before the plan went out (sent right after it).
  std::string m_early_stdin;
  bool m_early_stdin_eof = false;
  bool m_ready = false;   // reported ready (gate passed, or the container ran)
  bool m_paused = false;  // fcvm pause: the VMM is paused until unpause (or a stop)
  Clock::time_point m_boot_deadline{};
  Clock::time_point m_attach_deadline{};
  std::unique_ptr<readiness::GateRunner> m_gate;
  bool m_gate_settled = false;  // its verdict was acted on
  uint32_t m_probe_stream = 0;
  uint32_t m_next_stream = 1;
  std::optional<Clock::time_point> m_stop_deadline;
  bool m_stop_requested = false;  // by a client (stop, rm -f) or a signal: no restart
  Clock::time_point m_started_at = Clock::now();
  std::optional<Clock::time_point> m_poweroff_deadline;
  std::optional<int> m_exit_code;
  std::optional<Error> m_error;
  std::optional<state::SnapshotRecord> m_restore_from;  // a clone's first start
  ConsoleWatch m_console;
  std::optional<std::string> m_hang;  // the console line of a hung guest kernel
  Clock::time_point m_hang_deadline{};
  int m_boot_attempts = 1;
  // run_in_guest: the stream it waits for and what became of it.
  uint32_t m_sync_stream = 0;
  std::optional<int> m_sync_exit;
};

}  // namespace fcvm::vm
