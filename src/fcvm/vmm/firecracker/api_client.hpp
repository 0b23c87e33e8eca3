#pragma once
// HTTP client for Firecracker's API socket. ApiClient turns calls into requests and any non-2xx
// answer into an Error that names the call and carries Firecracker's fault_message verbatim:
//   "PUT /boot-source: 400 The kernel file cannot be opened: No such file or directory (os error
//   2)"
// The bytes go through a Transport: CurlTransport speaks HTTP/1.1 over the Unix socket with
// libcurl (one easy handle, so the connection is kept alive between calls); tests may substitute
// their own.
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "fcvm/util/result.hpp"

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
  // Fails only when no HTTP answer was obtained (connect, timeout, broken connection).
  virtual Result<ApiResponse> send(const ApiRequest& request, const ApiTimeouts& timeouts) = 0;
};

// libcurl over a Unix socket (CURLOPT_UNIX_SOCKET_PATH). Owns one CURL easy handle.
class CurlTransport : public Transport {
 public:
  explicit CurlTransport(std::string socket_path);
  ~CurlTransport() override;
  CurlTransport(const CurlTransport&) = delete;
  CurlTransport& operator=(const CurlTransport&) = delete;

  Result<ApiResponse> send(const ApiRequest& request, const ApiTimeouts& timeouts) override;
  const std::string& socket_path() const { return m_socket_path; }

 private:
  std::string m_socket_path;
  void* m_curl = nullptr;  // CURL*, kept opaque so users need not include curl.h
};

class ApiClient {
 public:
  explicit ApiClient(std::unique_ptr<Transport> transport, ApiTimeouts timeouts = {});
  // A client for the API socket at socket_path (CurlTransport).
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

}  // namespace fcvm::vmm::firecracker
