#include "fcvm/vm/control_client.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include "fcvm/util/unix_socket.hpp"

namespace fcvm::vm {

namespace proto = agent_proto;

Result<ControlClient> ControlClient::connect(const state::VmRecord& rec,
                                             std::chrono::milliseconds timeout) {
  return connect_socket(rec.dir + "/control.sock", rec.name, timeout);
}

Result<ControlClient> ControlClient::connect_socket(const std::string& path,
                                                    const std::string& vm_name,
                                                    std::chrono::milliseconds timeout) {
  auto fd = unix_connect(path, timeout);
  if (!fd) return tl::unexpected<Error>(std::move(fd.error()).wrap(fmt::format("VM {}", vm_name)));
  ControlClient c;
  c.m_fd = std::move(*fd);
  c.m_vm_name = vm_name;
  return c;
}

Result<> ControlClient::send(const control::Request& request) {
  return proto::write_frame(m_fd.get(), proto::Kind::kControl, 0, control::encode(request));
}

Result<> ControlClient::send_input(proto::Kind kind, std::string_view bytes) {
  return proto::write_frame(m_fd.get(), kind, 0, bytes);
}

Result<std::optional<std::vector<ControlClient::Incoming>>> ControlClient::pump() {
  using Out = std::optional<std::vector<Incoming>>;
  char buf[65536];
  ssize_t n;
  do {
    n = ::read(m_fd.get(), buf, sizeof buf);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return Out{};
  m_decoder.feed(std::string_view(buf, static_cast<size_t>(n)));
  std::vector<Incoming> items;
  for (;;) {
    FCVM_TRY_ASSIGN(auto frame, m_decoder.next());
    if (!frame) break;
    if (frame->kind == proto::Kind::kStdout || frame->kind == proto::Kind::kStderr) {
      items.emplace_back(Output{frame->kind, std::move(frame->payload)});
    } else if (frame->kind == proto::Kind::kControl) {
      FCVM_TRY_ASSIGN(auto msg, control::decode_message(frame->payload));
      items.emplace_back(std::move(msg));
    }
  }
  return Out(std::move(items));
}

Result<control::Message> ControlClient::next_message() {
  for (;;) {
    FCVM_TRY_ASSIGN(auto frame, m_decoder.next());
    if (frame) {
      if (frame->kind == proto::Kind::kControl) return control::decode_message(frame->payload);
      continue;
    }
    char buf[65536];
    ssize_t n = ::read(m_fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return fail(ErrorCode::kProtocol,
                  fmt::format("VM {}: the monitor closed the connection", m_vm_name));
    }
    m_decoder.feed(std::string_view(buf, static_cast<size_t>(n)));
  }
}

Result<control::Ok> ControlClient::call(const control::Request& request) {
  FCVM_TRY(send(request));
  for (;;) {
    FCVM_TRY_ASSIGN(auto msg, next_message());
    if (auto* ok = std::get_if<control::Ok>(&msg)) return *ok;
    if (auto* f = std::get_if<control::Failure>(&msg)) return tl::unexpected<Error>(f->error);
    // Events and exits belong to other requests of this connection.
  }
}

}  // namespace fcvm::vm
