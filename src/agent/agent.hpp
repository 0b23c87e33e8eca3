#pragma once
// Agent: fc-agent's single-threaded event loop and the state machine of one VM's plan.
//
//   connect --hello--> host --plan--> system (clock, hostname) -> network -> image -> container
//        events: network_ready, image_ready, container_started; then `ready`
//   podman run exits  -> exit {stream 0}       -> power off
//   stop              -> podman stop -t N      -> (podman run exits) -> exit -> power off
// A stored image's container runs under `crun run` instead (crun_container.cpp): stop signals
// the container's process, SIGKILL after the stop timeout.
//   a stage fails     -> error {stage}         -> power off
//
// Exactly one of `error` and `exit` (stream 0) ends a plan. Every slow step (podman, the
// container, exec sessions) is a child process watched through its pidfd and pipes in one poll
// loop, so the agent always answers the host: a `stop` during a long pull is handled at once.
//
// Ownership: the Agent owns the channel, the notify socket, every child process (helpers by id,
// streams by stream id) and the signalfd. Continuations of helpers run from the loop, never from
// inside a poll handler. run() returns when the VM should power off; main() does that.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/channel.hpp"
#include "agent/logic/oci.hpp"
#include "agent/piped_process.hpp"
#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/util/child_process.hpp"
#include "fcvm/util/signal_fd.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::agent {

struct AgentOptions {
  ChannelSpec channel{};
  // Prefix of every file the agent writes (/etc/..., the notify socket): "" in a guest; a
  // temporary directory when tests run the agent on the host.
  std::string root{};
  // Clock, hostname, entropy and power-off. Off when tests run the agent on the host.
  bool system_changes = true;
  // fcvm.mmds=1: the plan is in Firecracker's MMDS (logic/mmds.hpp): the agent prepares the VM
  // with it at once, and starts the container on the host's plan over the channel.
  bool mmds = false;
};

// /dev/vdX of the virtio disk with this serial (image.cpp).
Result<std::string> find_disk_by_serial(const std::string& root, const std::string& serial);
// Unmounts every block volume (before power-off: the host reads the images afterwards and
// writes back only what a cleanly unmounted file system holds).
void unmount_volumes(const std::string& root);

class Agent {
 public:
  explicit Agent(AgentOptions options);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Runs until the VM should power off (the plan ended and the host got its answer, or the answer
  // could not be delivered within a grace period). The result says why.
  Result<std::string> run();

 private:
  enum class Phase { kWaitingPlan, kPreparing, kStarting, kRunning, kStopping, kDone };

  using HelperDone = std::function<void(CommandOutput)>;
  struct Helper {
    std::string what;
    std::unique_ptr<PipedProcess> proc;
    std::string out, err;
    HelperDone done;
    int64_t deadline_ms = 0;  // uptime; 0 = none
    int64_t exited_ms = 0;
    bool timed_out = false;
  };
  // A process whose output goes to the host on its own stream: the main container (stream 0)
  // or an exec session.
  struct Stream {
    std::unique_ptr<PipedProcess> proc;
    std::string err_tail;  // last output kept for error messages (main stderr, crun exec)
    int64_t last_activity_ms = 0;
    int64_t exited_ms = 0;
    bool in_vm = false;  // an exec in the guest OS (not `podman exec`)
    std::string mark{};  // podman exec: the k_exec_mark_variable value of its conmon
    // crun exec: the process file it reads and the pid file it writes (removed at the end).
    std::string process_file{};
    std::string pid_file{};
    std::string console_socket{};  // a tty crun exec: where crun hands its terminal over
  };
  // How long crun gets to hand a container's terminal over (it creates the container first).
  static constexpr std::chrono::milliseconds k_console_handover_timeout{30000};

  // agent.cpp: loop, channel, handshake, dispatch, end of the plan.
  void build_poll_set(PollSet& set);
  void handle_channel_events();
  void on_connected();
  void on_frame(agent_proto::Frame&& frame);
  void on_control(const std::string& payload);
  void on_plan(const nlohmann::json& message);
  void send_hello();
  void send_event(const std::string& name, const std::string& detail = {});
  void send_log(const std::string& message);
  void fail_plan(const std::string& stage, const std::string& message);
  void finish(const std::string& reason);
  void on_signal();
  void check_deadlines();
  std::string path(const std::string& absolute) const { return m_options.root + absolute; }
  const char* state_name() const;

  // Helpers: short podman commands whose output is collected (helpers.cpp).
  void run_helper(std::string what, std::vector<std::string> argv, HelperDone done,
                  int64_t timeout_ms = 0, std::vector<std::string> env = {});
  void add_helpers_to(PollSet& set);
  void reap_helpers();
  void cancel_helpers();

  // Streams (streams.cpp).
  void add_streams_to(PollSet& set);
  void pump_stream(uint32_t id, int which);
  void reap_streams();
  void on_stream_exit(uint32_t id, const Stream& stream, ExitStatus status);

  // Exec sessions: start, refuse, resize, signal (exec_sessions.cpp).
  void start_exec(const nlohmann::json& message);
  void refuse_exec(uint32_t stream, int code, const std::string& why);
  std::string exec_unavailable() const;  // why a container exec cannot run now ("" if it can)
  void resize_exec(const nlohmann::json& message);
  void signal_exec(const nlohmann::json& message);

  // Plan stages (network.cpp, image.cpp, container.cpp).
  void start_plan();
  // The plan from MMDS (mmds.cpp), bounded to a few seconds.
  Result<agent_proto::Plan> read_mmds_plan();
  Result<> apply_system(const agent_proto::Plan& plan, bool first_time);
  // After a snapshot restore into a new VM (a clone): that VM's id, name and stop timeout.
  void adopt_identity(const agent_proto::Plan& plan);
  Result<> configure_network();
  void start_image();
  void load_archive(const std::string& source, bool is_copy);
  Result<> mount_image_rootfs();
  void pull_image();
  void image_ready(const std::string& image);
  // Block volumes: each disk mounted at k_volume_root/N for podman to bind (volumes.cpp).
  Result<> mount_volumes();
  Result<> start_sshfs(size_t index);
  bool volumes_mounted() const;
  void check_volumes();
  // Unmounts the volumes while their sshfs processes still serve them (writes are flushed to the
  // host), then lets those end.
  void finish_volumes();
  void start_container(const std::string& image);
  // Stream 0: the process that runs the container (podman run or crun run); false when it could
  // not start (the plan has then failed).
  // console_socket: crun's --console-socket in options.argv (run -t), the terminal handed over.
  bool start_main_stream(SpawnOptions options, const std::string& console_socket = {});
  // A stored image's container under crun (crun_container.cpp).
  bool runs_crun() const { return !m_plan->image.rootfs_serial.empty(); }
  Result<ContainerUser> container_user(const std::string& spec) const;
  void start_crun_container();
  void spawn_crun_run();
  void on_pid_watch();
  void stop_crun_container();
  void kill_crun_container();
  bool crun_container_ran() const;
  Result<SpawnOptions> crun_exec_options(const agent_proto::Exec& exec, Stream& stream);
  std::optional<pid_t> crun_exec_pid(const Stream& stream) const;
  void on_notify();
  void container_started(const std::string& how);
  void schedule_running_probe();
  void handle_stop(int timeout_s, const std::string& why);
  void stop_container();
  // A signal for the container's main process (a `signal` on stream 0: fcvm kill).
  void signal_container(int sig);
  void main_exited(const Stream& stream, ExitStatus status);

  AgentOptions m_options;
  Channel m_channel;
  Phase m_phase = Phase::kWaitingPlan;
  std::optional<agent_proto::Plan> m_plan;
  bool m_ready = false;  // READY=1 seen (or the probe saw the container running)

  std::map<uint64_t, Helper> m_helpers;
  uint64_t m_next_helper_id = 1;
  std::map<uint32_t, Stream> m_streams;
  uint64_t m_exec_serial = 0;  // makes every container exec's mark unique

  SignalFd m_signals{SIGTERM, SIGINT};
  UniqueFd m_notify_fd;
  std::string m_archive_copy;  // temporary copy of the image archive, removed after loading
  int64_t m_probe_at_ms = 0;   // when to ask podman whether the container runs (no READY yet)
  int m_probe_interval_ms = 0;
  bool m_probe_running = false;
  int m_stop_timeout_s = 10;
  bool m_stop_after_ready = false;  // stop requested while the container was starting
  int64_t m_kill_at_ms = 0;         // SIGKILL podman run if it has not exited by then
  int64_t m_power_off_at_ms = 0;    // phase kDone: give up delivering the answer
  std::string m_finish_reason;
  // crun (a stored image): the pid file's watch until the container runs, its process, and what
  // execs inherit from it.
  UniqueFd m_pid_watch;
  pid_t m_container_pid = 0;
  bool m_container_killed = false;
  ContainerUser m_container_user;
  std::vector<std::string> m_container_env;
  std::string m_container_cwd;
  std::vector<ChildProcess> m_volume_procs;  // sshfs, one per sshfs volume
  std::string m_pending_image;               // the container waits for its sshfs volumes
  // A plan from MMDS: preparation runs before the host connects; the container starts on the
  // host's plan (which keeps a foreground run's attach first), from m_deferred_image.
  bool m_awaiting_host = false;
  std::string m_deferred_image;
  std::string m_main_stdin;  // run -i: input before the container started
  bool m_main_stdin_eof = false;
  int64_t m_volumes_deadline_ms = 0;
};

}  // namespace fcvm::agent
