#include "fcvm/vmm/firecracker/api_client.hpp"

#include <curl/curl.h>
#include <fmt/format.h>

#include <mutex>

#include "fcvm/util/log.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::vmm::firecracker {

using nlohmann::json;

namespace {

void global_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t append_body(char* data, size_t size, size_t count, void* user) {
  // user is the std::string passed with CURLOPT_WRITEDATA below.
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

// RAII for a curl_slist of headers.
struct HeaderList {
  curl_slist* list = nullptr;
  ~HeaderList() { curl_slist_free_all(list); }
  void add(const char* header) {
    if (auto* next = curl_slist_append(list, header)) list = next;
  }
};

CURL* handle(void* p) { return static_cast<CURL*>(p); }

}  // namespace

CurlTransport::CurlTransport(std::string socket_path) : m_socket_path(std::move(socket_path)) {
  global_init_once();
  m_curl = curl_easy_init();
}

CurlTransport::~CurlTransport() {
  if (m_curl != nullptr) curl_easy_cleanup(handle(m_curl));
}

Result<ApiResponse> CurlTransport::send(const ApiRequest& request, const ApiTimeouts& timeouts) {
  if (m_curl == nullptr) return fail(ErrorCode::kInternal, "curl_easy_init failed");
  CURL* c = handle(m_curl);
  // Reset clears the options of the previous call but keeps the live connection.
  curl_easy_reset(c);
  ApiResponse response;
  char error_buffer[CURL_ERROR_SIZE] = {};
  HeaderList headers;
  headers.add("Accept: application/json");
  headers.add("Expect:");  // never wait for "100 Continue"
  auto url = "http://localhost" + request.path;
  curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, m_socket_path.c_str());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeouts.connect.count()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeouts.total.count()));
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response.body);
  if (request.method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  if (request.body) {
    headers.add("Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body->c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(request.body->size()));
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.list);

  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    std::string detail = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(rc);
    auto code = rc == CURLE_OPERATION_TIMEDOUT ? ErrorCode::kTimeout : ErrorCode::kSystem;
    return fail(code, fmt::format("{} {}: {} (API socket {})", request.method, request.path, detail,
                                  m_socket_path));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

ApiClient::ApiClient(std::unique_ptr<Transport> transport, ApiTimeouts timeouts)
    : m_transport(std::move(transport)), m_timeouts(timeouts) {}

ApiClient ApiClient::for_socket(const std::string& socket_path, ApiTimeouts timeouts) {
  return ApiClient(std::make_unique<CurlTransport>(socket_path), timeouts);
}

Result<> ApiClient::put(const std::string& path, const json& body) {
  FCVM_TRY(call("PUT", path, body));
  return {};
}

Result<> ApiClient::patch(const std::string& path, const json& body) {
  FCVM_TRY(call("PATCH", path, body));
  return {};
}

Result<json> ApiClient::get(const std::string& path) { return call("GET", path, std::nullopt); }

Result<json> ApiClient::call(const std::string& method, const std::string& path,
                             const std::optional<json>& body, std::optional<ApiTimeouts> timeouts) {
  ApiRequest request{method, path, std::nullopt};
  if (body) request.body = body->dump();
  FCVM_LOG(kDebug, "firecracker", "{} {} {}", method, path, request.body.value_or(""));
  auto response = m_transport->send(request, timeouts.value_or(m_timeouts));
  if (!response) return tl::unexpected<Error>(response.error());
  if (response->status < 200 || response->status > 299) {
    return fail(ErrorCode::kSystem, fmt::format("{} {}: {} {}", method, path, response->status,
                                                fault_text(response->body)));
  }
  if (trim(response->body).empty()) return json();
  json parsed = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return fail(ErrorCode::kProtocol, fmt::format("{} {}: answer is not JSON: {}", method, path,
                                                  response->body.substr(0, 200)));
  }
  return parsed;
}

std::string fault_text(const std::string& body) {
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.contains("fault_message") &&
      parsed["fault_message"].is_string()) {
    return parsed["fault_message"].get<std::string>();
  }
  auto text = std::string(trim(body));
  return text.empty() ? "(empty answer)" : text.substr(0, 500);
}

}  // namespace fcvm::vmm::firecracker
