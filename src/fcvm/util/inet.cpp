#include "fcvm/util/inet.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace fcvm {
namespace {
Result<sockaddr_in> make_addr(const std::string& address, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, address.c_str(), &a.sin_addr) != 1) {
    return fail(ErrorCode::kInvalidInput, fmt::format("\"{}\" is not an IPv4 address", address));
  }
  return a;
}
}  // namespace

Result<UniqueFd> inet_bind(const std::string& address, int port, bool udp) {
  FCVM_TRY_ASSIGN(auto a, make_addr(address, port));
  UniqueFd fd(::socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket");
  // sockaddr_in is the concrete type behind the generic sockaddr the call takes.
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    return fail_errno(fmt::format("bind {}:{}", address, port));
  }
  return fd;
}

Result<int> inet_bound_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  // See inet_bind for the cast.
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return fail_errno("getsockname");
  }
  return static_cast<int>(ntohs(a.sin_port));
}

Result<int> free_tcp_port(const std::string& address) {
  FCVM_TRY_ASSIGN(auto fd, inet_bind(address, 0));
  return inet_bound_port(fd.get());
}

bool tcp_port_open(const std::string& address, int port) {
  auto a = make_addr(address, port);
  if (!a) return false;
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  // See inet_bind for the cast.
  return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*a), sizeof *a) == 0;
}

}  // namespace fcvm
