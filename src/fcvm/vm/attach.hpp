#pragma once
// Clients of a VM's monitor that stream: a foreground run's attachment and an exec session. They
// move bytes between the given fds and the monitor; what those fds are (a terminal, pipes,
// containerd's FIFOs) and any terminal mode are the caller's.
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fcvm/state/vm_store.hpp"
#include "fcvm/util/result.hpp"
#include "fcvm/util/unique_fd.hpp"

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

// --detach-keys: keys as single characters or ctrl-X (X in a-z, @, [, backslash, ], ^, _), comma
// separated; "" turns detaching off. Returns the bytes they type; kInvalidInput names the value.
inline constexpr const char* k_default_detach_keys = "ctrl-p,ctrl-q";
Result<std::string> parse_detach_keys(std::string_view spec);

// Watches typed input for the detach sequence. What is not part of it passes through; a partial
// sequence is held until the next input decides.
class DetachKeys {
 public:
  explicit DetachKeys(std::string sequence) : m_sequence(std::move(sequence)) {}
  // The bytes to forward; `detached` when the sequence was completed (what follows it is dropped).
  std::string feed(std::string_view input, bool& detached);

 private:
  std::string m_sequence;
  size_t m_matched = 0;
};

// run -i / -t, attach: io.in goes to the container (its end as end of file); a terminal's size is
// sent when attaching and again on each SIGWINCH.
struct AttachOptions {
  bool interactive = false;
  bool tty = false;
  std::function<std::optional<WindowSize>()> window_size{};
  std::string detach_keys{};  // the bytes of parse_detach_keys (empty: no detaching)
};

// How an attachment ended: the container's exit code, or the user detached (the VM runs on).
struct AttachEnd {
  int exit_code = 0;
  bool detached = false;
};

class ExecControl;

// Foreground `run`, `start -a`, `attach`: attaches to the VM's monitor, copies the container's
// stdout/stderr to io.out/io.err, turns SIGINT/SIGTERM/SIGHUP into a stop (a second one kills the
// VM) and returns the container's exit code. ready_fd (-1: none) carries the monitor's start-up
// failure, if any. (With a terminal in raw mode, ^C reaches the container as a byte, not as
// SIGINT here.) With `control` (a server's thread, e.g. the containerd shim) this process's
// signals are left alone: what the control queues is sent instead (a signal goes to the
// container, a size to its terminal, close_stdin ends its input).
Result<AttachEnd> attach_foreground(const state::VmRecord& rec, int ready_fd, const Stdio& io = {},
                                    const AttachOptions& options = {},
                                    ExecControl* control = nullptr);

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

// Signals and terminal sizes for a running exec, sent from other threads (the HTTP API's calls);
// thread-safe.
class ExecControl {
 public:
  ExecControl();
  ExecControl(const ExecControl&) = delete;
  ExecControl& operator=(const ExecControl&) = delete;
  void signal(const std::string& name);  // a name is_signal_name accepts
  void resize(WindowSize size);
  void close_stdin();
  // Readable while something is queued.
  int fd() const { return m_event.get(); }
  struct Command {
    std::string signal{};  // or
    std::optional<WindowSize> size{};
    bool close_stdin = false;
  };
  std::vector<Command> take();

 private:
  void post(Command c);
  std::mutex m_mutex;
  std::vector<Command> m_queue;
  UniqueFd m_event;
};

// `fcvm exec`: runs a command through the VM's monitor and agent; returns its exit code.
// Without `control`, SIGINT/SIGTERM/SIGHUP of this process are forwarded to the command while it
// runs and SIGWINCH sends the size again; with it, what the control queues is sent instead.
Result<int> exec_in_vm(const state::VmRecord& rec, const ExecRequest& request, const Stdio& io = {},
                       ExecControl* control = nullptr);

}  // namespace fcvm::vm
