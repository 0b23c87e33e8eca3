#pragma once
// A ttrpc 1.x client for unary calls (the shim's events go to containerd's
// containerd.services.events.ttrpc.v1.Events/Forward): one call at a time on one connection.
#include <chrono>
#include <string>

#include "fcvm/util/result.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::ttrpc {

class Client {
 public:
  // `address`: a socket path, with or without "unix://".
  static Result<Client> connect(const std::string& address, std::chrono::milliseconds timeout);
  // The response message (serialized), or the error the server answered (its gRPC status as
  // kNotFound, kInvalidInput, ... and its message); kTimeout when no answer came in time.
  Result<std::string> call(const std::string& service, const std::string& method,
                           const std::string& payload, std::chrono::milliseconds timeout);

 private:
  explicit Client(UniqueFd fd) : m_fd(std::move(fd)) {}
  UniqueFd m_fd;
  uint32_t m_next_stream = 1;
};

// The error for a gRPC status code (the inverse of code_for).
ErrorCode error_code_for(int32_t grpc_code);

}  // namespace fcvm::ttrpc
