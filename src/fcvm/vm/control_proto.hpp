#pragma once
// The control protocol between a VM's monitor and its clients (`fcvm` commands, and any other
// front end), over the monitor's Unix socket DIR/control.sock. One place encodes and decodes it;
// the monitor and ControlClient both use these types, never JSON literals.
//
// Framing is agent_proto's (length, kind, stream, payload). Control frames (Kind::kControl) carry
// one JSON object with a "type"; kStdout/kStderr frames carry a container's or exec's output to
// the client, kStdin/kStdinEof the client's input to an exec.
//
//   client -> monitor   Request: attach | stop | kill | volume_sync | snapshot | exec | resize |
//                       signal | container_signal | rename | pause | unpause | subscribe
//   monitor -> client   Reply:   ok (with what the request made) | error (code, errno, message)
//                       Exited:  the attached container's or the exec's exit code (last message)
//                       Event:   a state change, to subscribers (vm/events.hpp)
//
// An error reply carries the ErrorCode and errno of the monitor's Error, so a client reports
// exactly what the monitor saw ("copy ...: No space left on device"), with the same exit code.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fcvm/util/result.hpp"
#include "fcvm/vm/events.hpp"

namespace fcvm::vm::control {

// A foreground `run`: the container's output and its exit code come to this client; the
// container starts once one client attached (the monitor waits for it, bounded).
// With run -t, the client's terminal size (0: none).
struct Attach {
  uint16_t rows = 0;
  uint16_t cols = 0;
};
// Stop the container (SIGTERM, SIGKILL after timeout_s; nullopt: the VM's own stop timeout).
struct Stop {
  std::optional<int> timeout_s{};
};
// End the VMM now.
struct Kill {};
// Write the block volumes of host directories back while the VM runs.
struct VolumeSync {};
// Write a snapshot of the running VM.
struct Snapshot {
  std::string name;
  bool then_stop = false;
};
// A process in the container (or the guest OS with in_vm) on this connection; its output comes as
// stdout/stderr frames, then Exited.
struct Exec {
  std::vector<std::string> argv{};
  std::vector<std::string> env{};  // "K=V"
  std::string workdir{};
  std::string user{};
  bool tty = false;
  bool in_vm = false;
  bool stdin_open = false;  // the client sends kStdin frames and a kStdinEof
  uint16_t rows = 0;        // initial terminal size of a tty exec; 0: not given
  uint16_t cols = 0;
};
// The exec's new terminal size.
struct Resize {
  uint16_t rows = 0;
  uint16_t cols = 0;
};
// A signal for the exec's process: a name without "SIG" (TERM, INT, HUP, KILL) or a number.
struct Signal {
  std::string signal;
};
// A signal for the VM's container (its main process): the same names as Signal.
struct ContainerSignal {
  std::string signal;
};
// The VM's new name (the monitor owns its record while it runs, so it writes the change).
struct Rename {
  std::string name;
};
// Pause the VMM (the guest's vCPUs stop; its memory stays), and let it run again.
struct Pause {};
struct Unpause {};
// The VM's time-to-live ends at this unix time in ms (0: none); the monitor then stops it.
struct SetExpiry {
  int64_t expires_ms = 0;
};
// The attached client leaves (its detach keys) and the VM runs on; no reply.
struct Detach {};
// Receive this VM's events from now on (the reply is ok; then Event messages).
struct Subscribe {};

using Request = std::variant<Attach, Stop, Kill, VolumeSync, Snapshot, Exec, Resize, Signal,
                             ContainerSignal, Rename, Pause, Unpause, Subscribe, Detach, SetExpiry>;

// The answer to a request. What it made: the VM's id (attach), a snapshot's id and name, the
// number of volumes written back.
struct Ok {
  std::string id{};
  std::string name{};
  std::optional<int64_t> count{};
};
struct Failure {
  Error error;
};
// The attached container's or this connection's exec's exit code (128+N for a signal).
struct Exited {
  int code = 0;
};
using Message = std::variant<Ok, Failure, Exited, Event>;

// The name on the wire of a request or message ("attach", "ok", ...).
std::string_view type_name(const Request& r);
std::string_view type_name(const Message& m);

std::string encode(const Request& r);
std::string encode(const Message& m);
// kProtocol for anything that is not a well-formed request / message (unknown type, a member of
// the wrong type, a value out of range).
Result<Request> decode_request(std::string_view payload);
Result<Message> decode_message(std::string_view payload);

// ErrorCode <-> its name on the wire ("invalid_input", ...); unknown names decode as kInternal.
std::string_view error_code_name(ErrorCode code);
ErrorCode error_code_from_name(std::string_view name);

}  // namespace fcvm::vm::control
