#include "fcvm/ttrpc/server.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <mutex>
#include <thread>
#include <vector>

#include "fcvm/util/unix_socket.hpp"
#include "ttrpc/ttrpc.pb.h"

namespace fcvm::ttrpc {

Code code_for(const Error& error) {
  switch (error.code()) {
    case ErrorCode::kInvalidInput:
      return Code::kInvalidArgument;
    case ErrorCode::kNotFound:
      return Code::kNotFound;
    case ErrorCode::kAlreadyExists:
      return Code::kAlreadyExists;
    case ErrorCode::kConflict:
      return Code::kFailedPrecondition;
    case ErrorCode::kUnavailable:
      return Code::kUnavailable;
    case ErrorCode::kTimeout:
      return Code::kDeadlineExceeded;
    case ErrorCode::kCancelled:
      return Code::kCancelled;
    default:
      return Code::kInternal;
  }
}

void Registry::add(const std::string& service, const std::string& method, Handler handler) {
  m_handlers[service + "/" + method] = std::move(handler);
}

std::string valid_utf8(std::string_view text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xe  ? 3
                 : (c >> 3) == 0x1e ? 4
                                    : 0;
    bool ok = len > 0 && i + len <= text.size();
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
    }
    if (ok) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out += "\xef\xbf\xbd";  // U+FFFD
      ++i;
    }
  }
  return out;
}

Frame error_response(uint32_t stream_id, Code code, const std::string& message) {
  ::ttrpc::Response response;
  response.mutable_status()->set_code(static_cast<int32_t>(code));
  // proto3 strings must be UTF-8: containerd refuses the whole response otherwise.
  response.mutable_status()->set_message(valid_utf8(message));
  return {stream_id, MessageType::kResponse, 0, response.SerializeAsString(), false};
}

std::optional<Frame> Registry::dispatch(const Frame& frame) const {
  if (frame.oversized) {
    return error_response(
        frame.stream_id, Code::kResourceExhausted,
        fmt::format("message length exceeds the maximum of {} bytes", k_max_payload));
  }
  if (frame.type != MessageType::kRequest) return std::nullopt;
  if (frame.stream_id % 2 != 1) {
    return error_response(frame.stream_id, Code::kInvalidArgument,
                          "StreamID must be odd for client initiated streams");
  }
  ::ttrpc::Request request;
  if (!request.ParseFromString(frame.payload)) {
    return error_response(frame.stream_id, Code::kInvalidArgument,
                          "the request is not a ttrpc.Request");
  }
  auto it = m_handlers.find(request.service() + "/" + request.method());
  if (it == m_handlers.end()) {
    bool service_known = false;
    for (const auto& [key, unused] : m_handlers) {
      service_known = service_known || key.rfind(request.service() + "/", 0) == 0;
    }
    return error_response(frame.stream_id, Code::kUnimplemented,
                          service_known ? fmt::format("method {}", request.method())
                                        : fmt::format("service {}", request.service()));
  }
  Call call{request.service(), request.method(), request.payload(), {}, request.timeout_nano()};
  for (const auto& kv : request.metadata()) call.metadata[kv.key()] = kv.value();
  auto result = it->second(call);
  if (!result) {
    return error_response(frame.stream_id, code_for(result.error()), result.error().to_string());
  }
  ::ttrpc::Response response;
  response.mutable_status()->set_code(0);
  response.set_payload(std::move(*result));
  return Frame{frame.stream_id, MessageType::kResponse, 0, response.SerializeAsString(), false};
}

Result<> serve_connection(int fd, const Registry& registry) {
  std::mutex write_mutex;
  std::vector<std::thread> calls;
  FrameReader reader;
  Result<> outcome;
  auto answer = [&](const Frame& frame) {
    auto response = registry.dispatch(frame);
    if (!response) return;
    auto bytes = encode_frame(*response);
    if (!bytes) {
      bytes = encode_frame(
          error_response(frame.stream_id, Code::kResourceExhausted, bytes.error().message()));
    }
    std::lock_guard lock(write_mutex);
    (void)write_all(fd, *bytes);  // a peer that left takes its answers with it
  };
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      outcome = fail_errno("ttrpc: read");
      break;
    }
    if (n == 0) break;
    reader.feed(std::string_view(buf, static_cast<size_t>(n)));
    while (auto frame = reader.next()) {
      calls.emplace_back([&answer, f = std::move(*frame)] { answer(f); });
    }
  }
  for (auto& t : calls) t.join();
  return outcome;
}

}  // namespace fcvm::ttrpc
