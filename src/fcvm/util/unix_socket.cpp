#include "fcvm/util/unix_socket.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace fcvm {
namespace {
Result<sockaddr_un> make_addr(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return fail(ErrorCode::kInvalidInput, fmt::format("socket path too long ({} > {} bytes): {}",
                                                      path.size(), sizeof addr.sun_path - 1, path));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}
}  // namespace

Result<UniqueFd> unix_connect(const std::string& path, std::chrono::milliseconds timeout) {
  auto addr = make_addr(path);
  if (!addr) return tl::unexpected<Error>(addr.error());
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return fail_errno("socket");
    // sockaddr_un is the concrete type behind the generic sockaddr the API takes.
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) == 0) {
      return fd;
    }
    int e = errno;
    if ((e != ENOENT && e != ECONNREFUSED && e != EINTR) ||
        std::chrono::steady_clock::now() >= deadline) {
      return fail_errno(fmt::format("connect {}", path), e);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

Result<UniqueFd> unix_listen(const std::string& path, int backlog) {
  auto addr = make_addr(path);
  if (!addr) return tl::unexpected<Error>(addr.error());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket");
  ::unlink(path.c_str());
  // See unix_connect for the cast.
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
    return fail_errno(fmt::format("bind {}", path));
  }
  if (::listen(fd.get(), backlog) != 0) return fail_errno(fmt::format("listen {}", path));
  return fd;
}

Result<> write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, 1000);
        continue;
      }
      return fail_errno("write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

Result<> read_exact(int fd, void* buf, size_t len) {
  auto* p = static_cast<char*>(buf);
  while (len > 0) {
    ssize_t n = ::read(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd pf{fd, POLLIN, 0};
        ::poll(&pf, 1, 1000);
        continue;
      }
      return fail_errno("read");
    }
    if (n == 0) return fail(ErrorCode::kProtocol, "connection closed");
    p += n;
    len -= static_cast<size_t>(n);
  }
  return {};
}

Result<bool> wait_readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return fail_errno("poll");
    return r > 0;
  }
}

}  // namespace fcvm
