#pragma once
// Minimal HTTP/1.1 server side for the fake Firecracker: requests with Content-Length bodies,
// persistent connections (what curl does), one answer per request in order.
#include <optional>
#include <string>

#include "fcvm/util/result.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fake_fc {

struct HttpRequest {
  std::string method;
  std::string path;
  std::string body;
  bool keep_alive = true;
};

struct HttpAnswer {
  int status = 204;
  std::string body{};  // JSON text; empty for 204
};

// One accepted connection with its unparsed input.
class HttpConnection {
 public:
  explicit HttpConnection(fcvm::UniqueFd fd) : m_fd(std::move(fd)) {}
  int fd() const { return m_fd.get(); }
  // Reads what is available; false when the peer closed the connection (or it failed).
  bool fill();
  // A complete request from the buffered input, nullopt when more bytes are needed; an error for
  // input that is not HTTP (the caller answers 400 and closes).
  fcvm::Result<std::optional<HttpRequest>> next_request();
  fcvm::Result<> send(const HttpAnswer& answer);

 private:
  fcvm::UniqueFd m_fd;
  std::string m_buffer;
};

std::string reason_phrase(int status);

}  // namespace fake_fc
