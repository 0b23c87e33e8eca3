#include "fcvm/ttrpc/client.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include "fcvm/ttrpc/frame.hpp"
#include "fcvm/ttrpc/server.hpp"
#include "fcvm/util/unix_socket.hpp"
#include "ttrpc/ttrpc.pb.h"

namespace fcvm::ttrpc {

ErrorCode error_code_for(int32_t grpc_code) {
  switch (static_cast<Code>(grpc_code)) {
    case Code::kInvalidArgument:
    case Code::kOutOfRange:
      return ErrorCode::kInvalidInput;
    case Code::kNotFound:
      return ErrorCode::kNotFound;
    case Code::kAlreadyExists:
      return ErrorCode::kAlreadyExists;
    case Code::kFailedPrecondition:
    case Code::kAborted:
      return ErrorCode::kConflict;
    case Code::kUnavailable:
    case Code::kUnimplemented:
      return ErrorCode::kUnavailable;
    case Code::kDeadlineExceeded:
      return ErrorCode::kTimeout;
    case Code::kCancelled:
      return ErrorCode::kCancelled;
    default:
      return ErrorCode::kInternal;
  }
}

Result<Client> Client::connect(const std::string& address, std::chrono::milliseconds timeout) {
  std::string path = address.rfind("unix://", 0) == 0 ? address.substr(7) : address;
  FCVM_TRY_ASSIGN(auto fd, unix_connect(path, timeout));
  return Client(std::move(fd));
}

Result<std::string> Client::call(const std::string& service, const std::string& method,
                                 const std::string& payload, std::chrono::milliseconds timeout) {
  ::ttrpc::Request request;
  request.set_service(service);
  request.set_method(method);
  request.set_payload(payload);
  request.set_timeout_nano(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count());
  uint32_t stream = m_next_stream;
  m_next_stream += 2;
  FCVM_TRY_ASSIGN(auto bytes, encode_frame({stream, MessageType::kRequest, 0,
                                            request.SerializeAsString(), false}));
  FCVM_TRY(write_all(m_fd.get(), bytes));
  FrameReader reader;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    while (auto frame = reader.next()) {
      if (frame->type != MessageType::kResponse || frame->stream_id != stream) continue;
      ::ttrpc::Response response;
      if (!response.ParseFromString(frame->payload)) {
        return fail(ErrorCode::kProtocol, "ttrpc: the response is not a ttrpc.Response");
      }
      if (response.status().code() != 0) {
        return fail(error_code_for(response.status().code()),
                    fmt::format("{}/{}: {}", service, method, response.status().message()));
      }
      return response.payload();
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return fail(ErrorCode::kTimeout, fmt::format("{}/{}: no answer", service, method));
    }
    FCVM_TRY_ASSIGN(bool readable, wait_readable(m_fd.get(), left));
    if (!readable) continue;
    char buf[65536];
    ssize_t n = ::read(m_fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("ttrpc: read");
    if (n == 0)
      return fail(ErrorCode::kSystem, fmt::format("{}/{}: connection closed", service, method));
    reader.feed(std::string_view(buf, static_cast<size_t>(n)));
  }
}

}  // namespace fcvm::ttrpc
