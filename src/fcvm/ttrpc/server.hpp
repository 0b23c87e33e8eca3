#pragma once
// A ttrpc 1.x server (containerd/ttrpc server.go): unary calls by service and method name, the
// errors as gRPC status codes, each request of a connection on a thread of its own.
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "fcvm/ttrpc/frame.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::ttrpc {

// The gRPC status codes containerd maps back to its errors (errdefs.FromGRPC).
enum class Code : int32_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
};
Code code_for(const Error& error);

struct Call {
  std::string service;
  std::string method;
  std::string payload;  // the request message, serialized
  std::map<std::string, std::string> metadata;
  int64_t timeout_nano = 0;
};
// The response message, serialized, or the error to answer.
using Handler = std::function<Result<std::string>(const Call&)>;

class Registry {
 public:
  void add(const std::string& service, const std::string& method, Handler handler);
  // The answer to one frame a client sent: a ttrpc.Response for its stream (unknown methods
  // Unimplemented, even stream ids and undecodable requests InvalidArgument, oversized payloads
  // ResourceExhausted). nullopt for a frame that is not a request (ignored, as ttrpc does).
  std::optional<Frame> dispatch(const Frame& frame) const;

 private:
  std::map<std::string, Handler> m_handlers;  // "service/method"
};

// `text` with every byte that is not part of valid UTF-8 replaced by U+FFFD.
std::string valid_utf8(std::string_view text);

// A ttrpc.Response frame with an error status (its message made valid UTF-8).
Frame error_response(uint32_t stream_id, Code code, const std::string& message);

// Serves one connection until its peer closes it: every request runs on a thread of its own (a
// Wait blocks while a State is answered); responses are written whole, one at a time. Returns
// once every request has been answered (or could not be, the peer being gone).
Result<> serve_connection(int fd, const Registry& registry);

}  // namespace fcvm::ttrpc
