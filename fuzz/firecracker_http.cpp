// The Firecracker client's HTTP/1.1 answer parser, fed the input as the server's bytes on a
// socket (then end of stream): status line, headers, Content-Length / chunked / until-EOF bodies.
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "fcvm/util/unix_socket.hpp"
#include "fcvm/vmm/firecracker/api_client.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The whole answer must fit in the socket's buffer (written before it is read).
  if (size == 0 || size > 64 * 1024) return 0;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  int buf = 256 * 1024;
  (void)::setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  (void)::setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  bool head = (data[0] & 1) != 0;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (!fcvm::write_all(sv[1], bytes)) std::abort();
  ::shutdown(sv[1], SHUT_WR);
  auto r = fcvm::vmm::firecracker::read_response(sv[0], head, std::chrono::milliseconds(1000));
  // The parser never waits past the end of the stream: a timeout would be a hang.
  if (!r && r.error().code() == fcvm::ErrorCode::kTimeout) std::abort();
  ::close(sv[0]);
  ::close(sv[1]);
  return 0;
}
