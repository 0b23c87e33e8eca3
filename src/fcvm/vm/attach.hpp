#pragma once
// Clients of a VM's monitor that stream: a foreground run's attachment and an exec session. They
// move bytes between the given fds and the monitor; what those fds are (a terminal, pipes,
// containerd's FIFOs) and any terminal mode are the caller's.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/state/vm_store.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::vm {

struct Stdio {
  int in = 0;
  int out = 1;
  int err = 2;
};

struct WindowSize {
  uint16_t rows = 0;
  uint16_t cols = 0;
};

// run -i / -t: io.in goes to the container (its end as end of file); a terminal's size is sent
// when attaching and again on each SIGWINCH.
struct AttachOptions {
  bool interactive = false;
  bool tty = false;
  std::function<std::optional<WindowSize>()> window_size{};
};

// Foreground `run`: attaches to the VM's monitor, copies the container's stdout/stderr to
// io.out/io.err, turns SIGINT/SIGTERM/SIGHUP into a stop (a second one kills the VM) and returns
// the container's exit code. ready_fd carries the monitor's start-up failure, if any. (With a
// terminal in raw mode, ^C reaches the container as a byte, not as SIGINT here.)
Result<int> attach_foreground(const state::VmRecord& rec, int ready_fd, const Stdio& io = {},
                              const AttachOptions& options = {});

struct ExecRequest {
  std::vector<std::string> argv;
  std::vector<std::string> env{};
  std::string workdir{};
  std::string user{};
  bool interactive = false;  // forward io.in
  bool tty = false;
  bool in_vm = false;  // run in the guest OS instead of the container
  // A tty exec's terminal size: asked at the start and again on each SIGWINCH (none: not sent).
  std::function<std::optional<WindowSize>()> window_size{};
};

// `fcvm exec`: runs a command through the VM's monitor and agent; returns its exit code.
// SIGINT/SIGTERM/SIGHUP are forwarded to the process while it runs.
Result<int> exec_in_vm(const state::VmRecord& rec, const ExecRequest& request,
                       const Stdio& io = {});

}  // namespace fcvm::vm
