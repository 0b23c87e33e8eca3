#include "fcvm/vmm/firecracker/api_client.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <string_view>
#include <thread>
#include <vector>

#include "fcvm/util/log.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::vmm::firecracker {

using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t k_max_header_bytes = 64 * 1024;
constexpr size_t k_max_body_bytes = 16 * 1024 * 1024;
constexpr size_t k_max_chunk_line_bytes = 4096;  // chunk size plus extensions

// Why one exchange failed. peer_closed: the server closed the connection before a single byte of
// the answer arrived, so the request may be sent again on a fresh connection.
struct Failure {
  ErrorCode code = ErrorCode::kSystem;
  std::string detail;
  bool peer_closed = false;
};

template <typename T = void>
using Outcome = tl::expected<T, Failure>;

tl::unexpected<Failure> failure(ErrorCode code, std::string detail, bool peer_closed = false) {
  return tl::unexpected<Failure>(Failure{code, std::move(detail), peer_closed});
}

tl::unexpected<Failure> system_failure(std::string_view call, int e) {
  return failure(ErrorCode::kSystem, fmt::format("{}: {}", call, std::strerror(e)));
}

tl::unexpected<Failure> protocol_failure(std::string detail) {
  return failure(ErrorCode::kProtocol, std::move(detail));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Peer-supplied text for an error message: quoted, control bytes escaped, at most 80 bytes.
std::string shown(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > 80) out += "...";
  return out + "\"";
}

// RFC 9110 token characters (methods, header names).
bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return std::isalnum(c) != 0 || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
  });
}

std::optional<uint64_t> parse_decimal(std::string_view s) {
  if (s.empty() || s.size() > 15 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// Milliseconds left until deadline, rounded up (for poll); 0 once it has passed.
int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, INT_MAX));
}

// Waits until fd has one of events (or an error/hangup). False when the deadline passed first.
Outcome<bool> wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    int left = remaining_ms(deadline);
    if (left == 0) return false;
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, left);
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return system_failure("poll", errno);
  }
}

// Connects a non-blocking Unix stream socket. A missing or refusing socket fails at once; only a
// full listen backlog is waited out, up to budget.
Outcome<UniqueFd> connect_socket(const std::string& path, milliseconds budget) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return failure(ErrorCode::kSystem, fmt::format("socket path length {} is not within 1..{}",
                                                   path.size(), sizeof addr.sun_path - 1));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return system_failure("socket", errno);
  auto deadline = Clock::now() + budget;
  auto timed_out = [&] {
    return failure(ErrorCode::kTimeout, fmt::format("connect timed out after {} ms",
                                                    std::max<int64_t>(budget.count(), 0)));
  };
  for (;;) {
    // sockaddr_un is the concrete type behind the generic sockaddr the API takes.
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
      return fd;
    }
    int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN) {  // the server's backlog is full: try again shortly
      if (Clock::now() >= deadline) return timed_out();
      std::this_thread::sleep_for(milliseconds(1));
      continue;
    }
    if (e == EINPROGRESS || e == EALREADY) {
      auto ready = wait_for(fd.get(), POLLOUT, deadline);
      if (!ready) return tl::unexpected<Failure>(ready.error());
      if (!*ready) return timed_out();
      int so_error = 0;
      socklen_t len = sizeof so_error;
      if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) {
        return system_failure("getsockopt SO_ERROR", errno);
      }
      if (so_error != 0) return system_failure("connect", so_error);
      return fd;
    }
    if (e == EISCONN) return fd;
    return system_failure("connect", e);
  }
}

// The method and path go into the request line verbatim: refuse anything that would break it.
Outcome<> check_request(const ApiRequest& request) {
  if (!is_token(request.method)) {
    return failure(ErrorCode::kInvalidInput, "the method is not an HTTP token");
  }
  bool path_ok = !request.path.empty() && request.path[0] == '/' &&
                 std::all_of(request.path.begin(), request.path.end(), [](char ch) {
                   auto c = static_cast<unsigned char>(ch);
                   return c > 0x20 && c < 0x7f;
                 });
  if (!path_ok) {
    return failure(ErrorCode::kInvalidInput,
                   "the path must start with '/' and hold no spaces or control characters");
  }
  return {};
}

std::string request_bytes(const ApiRequest& request) {
  std::string out = fmt::format("{} {} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n",
                                request.method, request.path);
  if (request.body) {
    out += fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                       request.body->size());
    out += *request.body;
  } else {
    out += "\r\n";
  }
  return out;
}

// Sends the whole request. Answers 0, or the errno (EPIPE, ECONNRESET) when the server has closed
// the connection: it may still have answered before closing, so the caller reads on.
Outcome<int> write_request(int fd, std::string_view data, Clock::time_point deadline,
                           milliseconds total) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    int e = errno;
    if (e == EINTR) continue;
    if (e == EPIPE || e == ECONNRESET) return e;
    if (e != EAGAIN && e != EWOULDBLOCK) return system_failure("send", e);
    auto ready = wait_for(fd, POLLOUT, deadline);
    if (!ready) return tl::unexpected<Failure>(ready.error());
    if (!*ready) {
      return failure(ErrorCode::kTimeout,
                     fmt::format("timed out after {} ms sending the request", total.count()));
    }
  }
  return 0;
}

// The answer's bytes as they arrive, with the exchange's deadline.
class Reader {
 public:
  Reader(int fd, Clock::time_point deadline, milliseconds total)
      : m_fd(fd), m_deadline(deadline), m_total(total) {}

  std::string& buffer() { return m_buffer; }
  size_t received() const { return m_received; }

  // Appends what arrives next to the buffer. False at the end of the connection.
  Outcome<bool> fill() {
    char chunk[16 * 1024];
    for (;;) {
      ssize_t n = ::recv(m_fd, chunk, sizeof chunk, 0);
      if (n > 0) {
        m_buffer.append(chunk, static_cast<size_t>(n));
        m_received += static_cast<size_t>(n);
        return true;
      }
      if (n == 0) return false;
      int e = errno;
      if (e == EINTR) continue;
      // A reset before the answer began is the server dropping the connection, like an EOF.
      if (e == ECONNRESET && m_received == 0) return false;
      if (e != EAGAIN && e != EWOULDBLOCK) return system_failure("recv", e);
      auto ready = wait_for(m_fd, POLLIN, m_deadline);
      if (!ready) return tl::unexpected<Failure>(ready.error());
      if (!*ready) {
        return failure(ErrorCode::kTimeout, fmt::format("timed out after {} ms {}", m_total.count(),
                                                        m_received == 0 ? "waiting for the answer"
                                                                        : "reading the answer"));
      }
    }
  }

  // Fills until the buffer holds at least size bytes; what names the part for a truncation error.
  Outcome<> fill_to(size_t size, std::string_view what) {
    while (m_buffer.size() < size) {
      auto more = fill();
      if (!more) return tl::unexpected<Failure>(more.error());
      if (!*more) return protocol_failure(fmt::format("connection closed inside the {}", what));
    }
    return {};
  }

  // The next line from pos (CRLF or LF stripped); advances pos past it.
  Outcome<std::string> line(size_t& pos, size_t max, std::string_view what) {
    for (;;) {
      auto nl = m_buffer.find('\n', pos);
      if (nl != std::string::npos) {
        std::string text = m_buffer.substr(pos, nl - pos);
        if (!text.empty() && text.back() == '\r') text.pop_back();
        pos = nl + 1;
        return text;
      }
      if (m_buffer.size() - pos > max) {
        return protocol_failure(fmt::format("{} longer than {} bytes", what, max));
      }
      auto more = fill();
      if (!more) return tl::unexpected<Failure>(more.error());
      if (!*more) return protocol_failure(fmt::format("connection closed inside the {}", what));
    }
  }

 private:
  int m_fd;
  Clock::time_point m_deadline;
  milliseconds m_total;
  std::string m_buffer;
  size_t m_received = 0;
};

// The status line and the headers that matter for framing.
struct Head {
  long status = 0;
  bool http10 = false;
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool close = false;       // Connection: close
  bool keep_alive = false;  // Connection: keep-alive (matters for HTTP/1.0)
};

// "HTTP/1.x 204 No Content" (the reason may be empty, and then its space too).
Outcome<Head> parse_status_line(std::string_view line) {
  Head head;
  bool ok = line.size() >= 12 && line.substr(0, 7) == "HTTP/1." &&
            (line[7] == '0' || line[7] == '1') && line[8] == ' ' &&
            (line.size() == 12 || line[12] == ' ');
  auto code = ok ? parse_decimal(line.substr(9, 3)) : std::nullopt;
  if (!code || *code < 100 || *code > 599) {
    return protocol_failure(fmt::format("malformed status line {}", shown(line)));
  }
  head.status = static_cast<long>(*code);
  head.http10 = line[7] == '0';
  return head;
}

// The header block: lines (without their line ends) up to, not including, the blank line.
Outcome<Head> parse_head(const std::vector<std::string>& lines) {
  auto head = parse_status_line(lines.at(0));
  if (!head) return head;
  std::vector<std::string> codings;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (line.front() == ' ' || line.front() == '\t') {
      return protocol_failure(fmt::format("folded header line {}", shown(line)));
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
      return protocol_failure(fmt::format("malformed header line {}", shown(line)));
    }
    auto name = lower(line.substr(0, colon));
    auto value = trim(line.substr(colon + 1));
    if (name == "content-length") {
      auto n = parse_decimal(value);
      if (!n) return protocol_failure(fmt::format("malformed Content-Length {}", shown(value)));
      if (head->content_length && *head->content_length != *n) {
        return protocol_failure("conflicting Content-Length headers");
      }
      if (*n > k_max_body_bytes) {
        return protocol_failure(
            fmt::format("Content-Length {} exceeds the limit of {} bytes", *n, k_max_body_bytes));
      }
      head->content_length = n;
    } else if (name == "transfer-encoding") {
      for (auto coding : split(value, ',')) codings.push_back(lower(trim(coding)));
    } else if (name == "connection") {
      for (auto option : split(value, ',')) {
        auto o = lower(trim(option));
        if (o == "close") head->close = true;
        if (o == "keep-alive") head->keep_alive = true;
      }
    }
  }
  if (!codings.empty()) {
    if (codings != std::vector<std::string>{"chunked"}) {
      return protocol_failure(
          fmt::format("unsupported Transfer-Encoding {}", shown(join(codings, ", "))));
    }
    head->chunked = true;
  }
  return head;
}

// Reads the header block of one answer, starting at pos; pos ends past its blank line.
Outcome<Head> read_head(Reader& reader, size_t& pos) {
  std::vector<std::string> lines;
  size_t start = pos;
  for (;;) {
    size_t left = k_max_header_bytes - std::min(k_max_header_bytes, pos - start);
    auto line = reader.line(pos, left, "header");
    if (!line) {
      // The connection ended before the first byte of the answer.
      if (reader.received() == 0 && line.error().code == ErrorCode::kProtocol) {
        return failure(ErrorCode::kSystem, "the server closed the connection without answering",
                       /*peer_closed=*/true);
      }
      return tl::unexpected<Failure>(line.error());
    }
    if (pos - start > k_max_header_bytes) {
      return protocol_failure(fmt::format("header longer than {} bytes", k_max_header_bytes));
    }
    if (lines.empty()) {
      // Check the status line as soon as it is complete: a server that does not speak HTTP is
      // reported at once rather than when the deadline passes.
      auto status = parse_status_line(*line);
      if (!status) return status;
    } else if (line->empty()) {
      return parse_head(lines);
    }
    lines.push_back(std::move(*line));
  }
}

// The body in chunked transfer coding from pos (RFC 9112 section 7.1); trailers are skipped.
Outcome<std::string> read_chunked(Reader& reader, size_t& pos) {
  std::string body;
  for (;;) {
    auto line = reader.line(pos, k_max_chunk_line_bytes, "chunk size line");
    if (!line) return tl::unexpected<Failure>(line.error());
    std::string_view size_text = trim(std::string_view(*line).substr(0, line->find(';')));
    uint64_t size = 0;
    auto [end, ec] =
        std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
    if (size_text.empty() || size_text.size() > 8 || ec != std::errc() ||
        end != size_text.data() + size_text.size()) {
      return protocol_failure(fmt::format("malformed chunk size line {}", shown(*line)));
    }
    if (size == 0) break;
    if (body.size() + size > k_max_body_bytes) {
      return protocol_failure(fmt::format("body exceeds the limit of {} bytes", k_max_body_bytes));
    }
    auto full = reader.fill_to(pos + size + 2, "chunked body");
    if (!full) return tl::unexpected<Failure>(full.error());
    const std::string& buffer = reader.buffer();
    if (buffer.compare(pos + size, 2, "\r\n") != 0) {
      return protocol_failure(fmt::format("chunk of {} bytes not followed by CRLF", size));
    }
    body.append(buffer, pos, size);
    pos += size + 2;
  }
  size_t trailers_start = pos;
  for (;;) {
    auto line = reader.line(pos, k_max_header_bytes, "chunked body trailer");
    if (!line) return tl::unexpected<Failure>(line.error());
    if (line->empty()) return body;
    if (pos - trailers_start > k_max_header_bytes) {
      return protocol_failure(fmt::format("trailer longer than {} bytes", k_max_header_bytes));
    }
  }
}

struct Answer {
  ApiResponse response;
  bool keep_alive = false;  // the connection may carry the next request
};

Outcome<Answer> read_answer(Reader& reader, bool head_request) {
  size_t pos = 0;
  auto head = read_head(reader, pos);
  // Interim answers (100 Continue and the like) precede the real one.
  while (head && head->status < 200 && head->status != 101) head = read_head(reader, pos);
  if (!head) return tl::unexpected<Failure>(head.error());
  if (head->status == 101) return protocol_failure("unexpected 101 Switching Protocols");

  Answer answer;
  answer.response.status = head->status;
  bool until_eof = false;
  if (head_request || head->status == 204 || head->status == 304) {
    // no body, whatever the headers say
  } else if (head->chunked) {
    auto body = read_chunked(reader, pos);
    if (!body) return tl::unexpected<Failure>(body.error());
    answer.response.body = std::move(*body);
  } else if (head->content_length) {
    auto full = reader.fill_to(pos + *head->content_length, "body");
    if (!full) {
      if (full.error().code != ErrorCode::kProtocol) return tl::unexpected<Failure>(full.error());
      return protocol_failure(fmt::format("connection closed after {} of {} body bytes",
                                          reader.buffer().size() - pos, *head->content_length));
    }
    answer.response.body = reader.buffer().substr(pos, *head->content_length);
    pos += *head->content_length;
  } else {
    until_eof = true;  // the body ends with the connection
    for (;;) {
      if (reader.buffer().size() - pos > k_max_body_bytes) {
        return protocol_failure(
            fmt::format("body exceeds the limit of {} bytes", k_max_body_bytes));
      }
      auto more = reader.fill();
      if (!more) return tl::unexpected<Failure>(more.error());
      if (!*more) break;
    }
    answer.response.body = reader.buffer().substr(pos);
    pos = reader.buffer().size();
  }
  // Bytes beyond the answer mean the server is out of step with us: do not reuse the connection.
  bool extra = reader.buffer().size() > pos;
  bool both_framings = head->chunked && head->content_length.has_value();
  answer.keep_alive =
      !until_eof && !extra && !head->close && !both_framings && (!head->http10 || head->keep_alive);
  return answer;
}

// One request and its answer on an open connection.
Outcome<Answer> exchange(int fd, const ApiRequest& request, std::string_view bytes,
                         Clock::time_point deadline, milliseconds total) {
  auto write_errno = write_request(fd, bytes, deadline, total);
  if (!write_errno) return tl::unexpected<Failure>(write_errno.error());
  Reader reader(fd, deadline, total);
  auto answer = read_answer(reader, request.method == "HEAD");
  if (!answer && answer.error().peer_closed && *write_errno != 0) {
    return failure(ErrorCode::kSystem, fmt::format("send: {}", std::strerror(*write_errno)),
                   /*peer_closed=*/true);
  }
  if (answer && *write_errno != 0) answer->keep_alive = false;
  return answer;
}

// True when a kept connection still looks usable: no EOF, error or stray bytes waiting on it.
bool idle_connection_usable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

}  // namespace

UnixHttpTransport::UnixHttpTransport(std::string socket_path)
    : m_socket_path(std::move(socket_path)) {}

UnixHttpTransport::~UnixHttpTransport() = default;

Result<ApiResponse> UnixHttpTransport::send(const ApiRequest& request,
                                            const ApiTimeouts& timeouts) {
  auto error = [&](const Failure& f) {
    m_fd.reset();
    return fail(f.code, fmt::format("{} {}: {} (API socket {})", request.method, request.path,
                                    f.detail, m_socket_path));
  };
  if (auto ok = check_request(request); !ok) return error(ok.error());
  auto deadline = Clock::now() + timeouts.total;
  auto bytes = request_bytes(request);
  if (m_fd && !idle_connection_usable(m_fd.get())) m_fd.reset();
  for (bool retried = false;; retried = true) {
    bool reused = m_fd.valid();
    if (!reused) {
      auto left = std::chrono::floor<milliseconds>(deadline - Clock::now());
      auto fd = connect_socket(m_socket_path, std::min(timeouts.connect, left));
      if (!fd) return error(fd.error());
      m_fd = std::move(*fd);
    }
    auto answer = exchange(m_fd.get(), request, bytes, deadline, timeouts.total);
    if (answer) {
      if (!answer->keep_alive) m_fd.reset();
      return std::move(answer->response);
    }
    m_fd.reset();
    // A kept connection the server had already closed: the request never reached it.
    if (answer.error().peer_closed && reused && !retried) {
      FCVM_LOG(kDebug, "firecracker", "{} {}: kept connection was closed ({}), reconnecting",
               request.method, request.path, answer.error().detail);
      continue;
    }
    return error(answer.error());
  }
}

Result<ApiResponse> read_response(int fd, bool head_request, milliseconds timeout) {
  Reader reader(fd, Clock::now() + timeout, timeout);
  auto answer = read_answer(reader, head_request);
  if (!answer) return fail(answer.error().code, answer.error().detail);
  return std::move(answer->response);
}

ApiClient::ApiClient(std::unique_ptr<Transport> transport, ApiTimeouts timeouts)
    : m_transport(std::move(transport)), m_timeouts(timeouts) {}

ApiClient ApiClient::for_socket(const std::string& socket_path, ApiTimeouts timeouts) {
  return ApiClient(std::make_unique<UnixHttpTransport>(socket_path), timeouts);
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
