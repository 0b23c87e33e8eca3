#include "fake_firecracker/http.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>

#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fake_fc {

using fcvm::ErrorCode;
using fcvm::fail;

namespace {
constexpr size_t k_max_header_bytes = 64 * 1024;
constexpr size_t k_max_body_bytes = 16 * 1024 * 1024;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}
}  // namespace

std::string reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    default:
      return "Internal Server Error";
  }
}

bool HttpConnection::fill() {
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(m_fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    m_buffer.append(buf, static_cast<size_t>(n));
    return true;
  }
}

fcvm::Result<std::optional<HttpRequest>> HttpConnection::next_request() {
  auto end = m_buffer.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (m_buffer.size() > k_max_header_bytes) return fail(ErrorCode::kProtocol, "headers too long");
    return std::optional<HttpRequest>{};
  }
  auto lines = fcvm::split(std::string_view(m_buffer).substr(0, end), '\n');
  auto request_line = fcvm::split(fcvm::trim(lines.at(0)), ' ');
  if (request_line.size() != 3 || request_line[2].rfind("HTTP/1.", 0) != 0) {
    return fail(ErrorCode::kProtocol, "bad request line");
  }
  HttpRequest req;
  req.method = std::string(request_line[0]);
  req.path = std::string(request_line[1]);
  req.keep_alive = request_line[2] == "HTTP/1.1";
  size_t length = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    auto line = fcvm::trim(lines[i]);
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return fail(ErrorCode::kProtocol, "bad header line");
    auto name = lower(fcvm::trim(line.substr(0, colon)));
    auto value = fcvm::trim(line.substr(colon + 1));
    if (name == "content-length") {
      auto n = fcvm::parse_int(value, 0, k_max_body_bytes);
      if (!n) return fail(ErrorCode::kProtocol, "bad Content-Length");
      length = static_cast<size_t>(*n);
    } else if (name == "transfer-encoding") {
      return fail(ErrorCode::kProtocol, "Transfer-Encoding is not supported");
    } else if (name == "connection") {
      auto v = lower(value);
      if (v == "close") req.keep_alive = false;
      if (v == "keep-alive") req.keep_alive = true;
    }
  }
  size_t body_start = end + 4;
  if (m_buffer.size() < body_start + length) return std::optional<HttpRequest>{};
  req.body = m_buffer.substr(body_start, length);
  m_buffer.erase(0, body_start + length);
  return std::optional<HttpRequest>(std::move(req));
}

fcvm::Result<> HttpConnection::send(const HttpAnswer& answer) {
  std::string head = fmt::format("HTTP/1.1 {} {}\r\nServer: Firecracker API\r\n", answer.status,
                                 reason_phrase(answer.status));
  if (answer.status == 204) {
    head += "\r\n";
    return fcvm::write_all(m_fd.get(), head);
  }
  head += fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                      answer.body.size());
  return fcvm::write_all(m_fd.get(), head + answer.body);
}

}  // namespace fake_fc
