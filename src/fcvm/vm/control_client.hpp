#pragma once
// ControlClient: a connection to a VM's monitor (DIR/control.sock), speaking control_proto.hpp.
// It never touches the terminal or fds 0-2: output comes back to the caller as values.
#include <chrono>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "fcvm/agent_proto/frame.hpp"
#include "fcvm/state/vm_store.hpp"
#include "fcvm/util/unique_fd.hpp"
#include "fcvm/vm/control_proto.hpp"

namespace fcvm::vm {

class ControlClient {
 public:
  // Output of the attached container or of this connection's exec.
  struct Output {
    agent_proto::Kind kind = agent_proto::Kind::kStdout;  // kStdout or kStderr
    std::string bytes;
  };
  using Incoming = std::variant<Output, control::Message>;

  static Result<ControlClient> connect(const state::VmRecord& rec,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(5));
  static Result<ControlClient> connect_socket(const std::string& path, const std::string& vm_name,
                                              std::chrono::milliseconds timeout);

  Result<> send(const control::Request& request);
  // An exec's stdin (kStdin) or its end (kStdinEof).
  Result<> send_input(agent_proto::Kind kind, std::string_view bytes);
  // Reads what is available (one read; call when fd() is readable) and returns what it completed.
  // An empty optional: the monitor hung up.
  Result<std::optional<std::vector<Incoming>>> pump();
  // Blocks for the next control message (output in between is dropped); kProtocol on hang-up.
  Result<control::Message> next_message();
  // A one-shot request: its Ok, or the monitor's error as it was (code, errno, message).
  Result<control::Ok> call(const control::Request& request);
  int fd() const { return m_fd.get(); }

 private:
  UniqueFd m_fd;
  agent_proto::Decoder m_decoder;
  std::string m_vm_name;
};

}  // namespace fcvm::vm
