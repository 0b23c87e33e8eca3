#pragma once
// The per-VM monitor: a process of its own (in its own session), started by `run`, `start` and
// `clone` through spawn_monitor. It owns the VM for its whole life: the VMM, the network helper
// and namespaces, the agent channel and the control socket (DIR/control.sock, control_proto.hpp)
// through which clients attach, exec, stop, snapshot and subscribe to events. It records every
// state change in the store and the event journal, and cleans up when the VM ends. Because every
// process it starts dies with it (PDEATHSIG), a `kill -9` of the monitor leaves only files and a
// row, which `ls`/`rm` reconcile.
//
// Life of one run (monitor_impl.hpp has the phases):
//   starting: disk -> network -> VMM -> agent hello -> plan   (ready pipe: "error: ..." on
//             failure)
//   running:  the container runs and the readiness gate passed (ready pipe: "ok")
//   stopping: a stop request, a signal, or the last attached client of an auto-remove VM left
//   exited:   the container's exit code (or the error) recorded; auto-remove VMs are deleted
//
// Any front end's binary can be a monitor: its main() hands argv to monitor_main when argv[1] is
// k_monitor_command, before parsing anything of its own.
#include <string>
#include <vector>

namespace fcvm::vm {

inline constexpr const char* k_monitor_command = "__monitor";

// How a monitor is started. Everything it needs is here or in the VM's record: it reads no
// environment variable of its own.
struct MonitorLaunch {
  std::string id;
  // The VM's first start: a failure before the container ran removes the VM entirely.
  bool fresh = false;
  // A foreground run attaches to see all output: the container starts once it has (or after
  // k_attach_timeout).
  bool wait_attach = false;
  // With wait_attach: no time limit; the booted VM waits for its client as long as it takes
  // (containerd's Create boots, its Start attaches). Event `booted` marks the wait.
  bool hold = false;
  std::string timings_file{};  // start-up milestones as JSON lines (benchmarks); empty: none
  std::string log_level{};     // the monitor's debug log level (into DIR/monitor.log)
  std::string data_dir{};
  std::string guest_dir{};
  std::string cache_dir{};
  std::string accel{};            // Context::accel
  std::string firecracker_bin{};  // Context::firecracker_bin
  std::string jailer_bin{};       // Context::jailer_bin
  int64_t t0_ns = 0;              // the starting command's zero of timings (wall clock ns)
};

// The monitor process's argv (after the executable): k_monitor_command, the id and options.
// ready_fd receives one line: "ok" once the VM is ready, or "error: MESSAGE".
std::vector<std::string> monitor_args(const MonitorLaunch& launch, int ready_fd);

// A monitor process's main: parses monitor_args' argv (argv[1] is k_monitor_command) and runs
// the VM to its end. Returns the process exit code (2 for a malformed argv).
int monitor_main(int argc, char** argv);

}  // namespace fcvm::vm
