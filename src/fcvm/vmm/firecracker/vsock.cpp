#include "fcvm/vmm/firecracker/vsock.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "fcvm/util/log.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fcvm::vmm::firecracker {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

milliseconds left_until(Clock::time_point deadline) {
  return std::max(milliseconds(0),
                  std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
}

// The outcome of one attempt: connected, retry later (with why), or a hard failure.
struct Attempt {
  enum class Kind { kConnected, kRetry, kFatal } kind = Kind::kRetry;
  UniqueFd fd{};
  std::string why{};
  Error error{};
};

// Reads the reply line one byte at a time so that no byte of the guest's stream is consumed.
Attempt read_reply(UniqueFd fd, uint32_t port, Clock::time_point deadline) {
  constexpr size_t k_max_line = 64;
  std::string line;
  for (;;) {
    auto left = left_until(deadline);
    pollfd p{fd.get(), POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return {Attempt::Kind::kFatal, {}, {}, Error(ErrorCode::kSystem, "poll", errno)};
    if (r == 0) return {Attempt::Kind::kRetry, {}, "no answer to CONNECT", {}};
    char c = 0;
    ssize_t n = ::read(fd.get(), &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == ECONNRESET) {
      return {Attempt::Kind::kRetry, {}, "connection reset (guest not listening yet)", {}};
    }
    if (n < 0) {
      return {Attempt::Kind::kFatal, {}, {}, Error(ErrorCode::kSystem, "read", errno)};
    }
    if (n == 0) {
      if (line.empty()) {
        return {Attempt::Kind::kRetry, {}, "connection closed (guest not listening yet)", {}};
      }
      break;
    }
    if (c == '\n') break;
    line.push_back(c);
    if (line.size() > k_max_line) break;
  }
  auto text = std::string(trim(line));
  if (text.rfind("OK ", 0) == 0 && parse_int(trim(text.substr(3)), 0, UINT32_MAX)) {
    return {Attempt::Kind::kConnected, std::move(fd), {}, {}};
  }
  return {Attempt::Kind::kFatal,
          {},
          {},
          Error(ErrorCode::kProtocol,
                fmt::format("unexpected answer to CONNECT {}: \"{}\"", port, line.substr(0, 64)))};
}

Attempt try_once(const std::string& uds_path, uint32_t port, Clock::time_point deadline,
                 const VsockConnectOptions& options) {
  auto fd = unix_connect(uds_path, std::min(left_until(deadline), milliseconds(200)));
  if (!fd) {
    int e = fd.error().sys_errno();
    if (e == ENOENT || e == ECONNREFUSED || e == EINTR || e == EAGAIN) {
      return {Attempt::Kind::kRetry, {}, fd.error().to_string(), {}};
    }
    return {Attempt::Kind::kFatal, {}, {}, fd.error()};
  }
  auto request = fmt::format("CONNECT {}\n", port);
  if (auto w = write_all(fd->get(), request); !w) {
    return {Attempt::Kind::kRetry, {}, "write CONNECT: " + w.error().to_string(), {}};
  }
  auto attempt_deadline = std::min(deadline, Clock::now() + options.handshake_timeout);
  return read_reply(std::move(*fd), port, attempt_deadline);
}

}  // namespace

Result<UniqueFd> vsock_connect(const std::string& uds_path, uint32_t port, milliseconds timeout,
                               VsockConnectOptions options) {
  auto deadline = Clock::now() + timeout;
  auto backoff = options.initial_backoff;
  std::string last_reason = "not tried";
  int attempts = 0;
  for (;;) {
    ++attempts;
    auto attempt = try_once(uds_path, port, deadline, options);
    switch (attempt.kind) {
      case Attempt::Kind::kConnected:
        FCVM_LOG(kDebug, "vsock", "connected to port {} via {} after {} attempt(s)", port, uds_path,
                 attempts);
        return std::move(attempt.fd);
      case Attempt::Kind::kFatal:
        return fail(std::move(attempt.error).wrap(fmt::format("vsock {} port {}", uds_path, port)));
      case Attempt::Kind::kRetry:
        // An attempt cut short by the overall deadline says less than the one before it.
        if (attempts == 1 || left_until(deadline) > milliseconds(0)) last_reason = attempt.why;
        break;
    }
    if (options.still_alive) {
      auto alive = options.still_alive();
      if (!alive)
        return fail(std::move(alive.error()).wrap(fmt::format("vsock {} port {}", uds_path, port)));
    }
    if (left_until(deadline) <= milliseconds(0)) {
      return fail(ErrorCode::kTimeout,
                  fmt::format("vsock {} port {}: guest did not accept within {} ms ({} attempts, "
                              "last: {})",
                              uds_path, port, timeout.count(), attempts, last_reason));
    }
    std::this_thread::sleep_for(std::min(backoff, left_until(deadline)));
    backoff = std::min(options.max_backoff, backoff * 2);
  }
}

}  // namespace fcvm::vmm::firecracker
