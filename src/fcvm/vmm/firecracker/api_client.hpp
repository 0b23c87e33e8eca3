#pragma once
// HTTP client for Firecracker's API socket. ApiClient turns calls into requests and any non-2xx
// answer into an Error that names the call and carries Firecracker's fault_message verbatim:
//   "PUT /boot-source: 400 The kernel file cannot be opened: No such file or directory (os error
//   2)"
// The bytes go through a Transport: UnixHttpTransport speaks HTTP/1.1 over the Unix socket itself
// (no libcurl: it would add ~35 shared libraries to every exec of fcvm) and keeps the connection
// alive between calls; tests may substitute their own.
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "fcvm/util/result.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::vmm::firecracker {

struct ApiRequest {
  std::string method;                 // GET, PUT, PATCH
  std::string path;                   // "/boot-source"
  std::optional<std::string> body{};  // JSON text
};

struct ApiResponse {
  long status = 0;
  std::string body;
};

struct ApiTimeouts {
  std::chrono::milliseconds connect{1000};
  std::chrono::milliseconds total{10000};
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Fails only when no HTTP answer was obtained (connect, timeout, broken connection, an answer
  // that is not HTTP).
  virtual Result<ApiResponse> send(const ApiRequest& request, const ApiTimeouts& timeouts) = 0;
};

// HTTP/1.1 over a Unix stream socket, one request at a time. The connection is kept open between
// calls (Firecracker's server keeps it alive); when a kept connection turns out to have been closed
// by the server before any byte of the answer arrived, the request is sent once more on a fresh
// connection. The whole exchange (connect included) is bounded by timeouts.total, the connect by
// timeouts.connect; a missing or refusing socket fails at once (callers that wait for Firecracker
// poll themselves). Errors read "{METHOD} {PATH}: {detail} (API socket {path})": kTimeout when a
// deadline passed, kProtocol for an answer that is not well-formed HTTP/1.x, kInvalidInput for a
// method or path that cannot go into a request line, kSystem otherwise.
// Answers are framed by Content-Length, chunked transfer coding or the end of the connection;
// headers are limited to 64 KiB and bodies to 16 MiB.
class UnixHttpTransport : public Transport {
 public:
  explicit UnixHttpTransport(std::string socket_path);
  ~UnixHttpTransport() override;
  UnixHttpTransport(const UnixHttpTransport&) = delete;
  UnixHttpTransport& operator=(const UnixHttpTransport&) = delete;

  Result<ApiResponse> send(const ApiRequest& request, const ApiTimeouts& timeouts) override;
  const std::string& socket_path() const { return m_socket_path; }

 private:
  std::string m_socket_path;
  UniqueFd m_fd;  // the kept-alive connection; empty when there is none
};

class ApiClient {
 public:
  explicit ApiClient(std::unique_ptr<Transport> transport, ApiTimeouts timeouts = {});
  // A client for the API socket at socket_path (UnixHttpTransport).
  static ApiClient for_socket(const std::string& socket_path, ApiTimeouts timeouts = {});

  Result<> put(const std::string& path, const nlohmann::json& body);
  Result<> patch(const std::string& path, const nlohmann::json& body);
  Result<nlohmann::json> get(const std::string& path);
  // Any method with an explicit timeout (snapshot calls may take long). Answers the parsed body
  // (null when empty).
  Result<nlohmann::json> call(const std::string& method, const std::string& path,
                              const std::optional<nlohmann::json>& body,
                              std::optional<ApiTimeouts> timeouts = std::nullopt);

  const ApiTimeouts& timeouts() const { return m_timeouts; }
  void set_timeouts(ApiTimeouts timeouts) { m_timeouts = timeouts; }

 private:
  std::unique_ptr<Transport> m_transport;
  ApiTimeouts m_timeouts;
};

// The text of an error answer: Firecracker's fault_message when the body carries one, the trimmed
// body otherwise.
std::string fault_text(const std::string& body);

// One answer read from a connected stream socket exactly as UnixHttpTransport reads it (for the
// fuzzer and tests): the response, or the error send() would report without its prefix.
Result<ApiResponse> read_response(int fd, bool head_request, std::chrono::milliseconds timeout);

}  // namespace fcvm::vmm::firecracker
