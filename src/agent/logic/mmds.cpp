#include "agent/logic/mmds.hpp"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <optional>

#include "fcvm/util/strings.hpp"

namespace fcvm::agent {

bool mmds_from_cmdline(std::string_view cmdline) {
  bool on = false;
  for (auto word : split(cmdline, ' ')) {
    auto w = trim(word);
    constexpr std::string_view k_key = "fcvm.mmds=";
    if (w.substr(0, k_key.size()) == k_key) on = w.substr(k_key.size()) == "1";
  }
  return on;
}

std::string mmds_token_request() {
  return fmt::format(
      "PUT /latest/api/token HTTP/1.1\r\nHost: {}\r\nX-metadata-token-ttl-seconds: 60\r\n"
      "Content-Length: 0\r\nConnection: close\r\n\r\n",
      k_mmds_address);
}

std::string mmds_get_request(std::string_view path, std::string_view token) {
  return fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}\r\nX-metadata-token: {}\r\nAccept: application/json\r\n"
      "Connection: close\r\n\r\n",
      path, k_mmds_address, token);
}

namespace {
bool iequals_prefix(std::string_view line, std::string_view name) {
  if (line.size() <= name.size() || line[name.size()] != ':') return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(line[i])) != name[i]) return false;
  }
  return true;
}
}  // namespace

bool mmds_response_complete(std::string_view received) {
  auto head_end = received.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return false;
  auto head = received.substr(0, head_end);
  for (size_t at = head.find("\r\n"); at != std::string_view::npos;) {
    auto next = head.find("\r\n", at + 2);
    auto line = head.substr(at + 2, next == std::string_view::npos ? next : next - at - 2);
    if (iequals_prefix(line, "content-length")) {
      auto value = trim(line.substr(15));
      size_t n = 0;
      auto [q, e] = std::from_chars(value.data(), value.data() + value.size(), n);
      // A bad length: complete as it is (mmds_response_body says what is wrong).
      if (e != std::errc() || q != value.data() + value.size()) return true;
      return received.size() - head_end - 4 >= n;
    }
    at = next;
  }
  return false;
}

Result<std::string> mmds_response_body(std::string_view response) {
  auto head_end = response.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    return fail(ErrorCode::kProtocol, "MMDS: the answer ends inside its headers");
  }
  auto head = response.substr(0, head_end);
  auto body = response.substr(head_end + 4);
  auto line_end = head.find("\r\n");
  auto status_line = head.substr(0, line_end);
  // "HTTP/1.1 200 OK"
  if (status_line.substr(0, 5) != "HTTP/" || status_line.size() < 12 || status_line[8] != ' ') {
    return fail(ErrorCode::kProtocol,
                fmt::format("MMDS: not an HTTP status line: \"{}\"", status_line.substr(0, 80)));
  }
  int status = 0;
  auto code = status_line.substr(9, 3);
  auto [p, ec] = std::from_chars(code.data(), code.data() + code.size(), status);
  if (ec != std::errc() || p != code.data() + code.size()) {
    return fail(ErrorCode::kProtocol, fmt::format("MMDS: bad status \"{}\"", code));
  }
  std::optional<size_t> length;
  while (line_end != std::string_view::npos) {
    head.remove_prefix(line_end + 2);
    line_end = head.find("\r\n");
    auto line = head.substr(0, line_end);
    if (iequals_prefix(line, "content-length")) {
      auto value = trim(line.substr(15));
      size_t n = 0;
      auto [q, e] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (e != std::errc() || q != value.data() + value.size() || value.empty()) {
        return fail(ErrorCode::kProtocol, fmt::format("MMDS: bad Content-Length \"{}\"", value));
      }
      length = n;
    }
  }
  if (length) {
    if (body.size() < *length) {
      return fail(ErrorCode::kProtocol, fmt::format("MMDS: the body is cut short ({} of {} bytes)",
                                                    body.size(), *length));
    }
    body = body.substr(0, *length);
  }
  if (status == 404) return fail(ErrorCode::kNotFound, "MMDS: no such entry (404)");
  if (status < 200 || status > 299) {
    return fail(ErrorCode::kSystem,
                fmt::format("MMDS: status {}: {}", status, trim(body.substr(0, 200))));
  }
  return std::string(body);
}

}  // namespace fcvm::agent
