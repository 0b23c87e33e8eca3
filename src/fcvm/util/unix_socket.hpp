#pragma once
#include <chrono>
#include <string>
#include <string_view>

#include "fcvm/util/result.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm {

// Connects a SOCK_STREAM Unix socket, retrying while the path does not exist yet or refuses,
// until the timeout passes.
Result<UniqueFd> unix_connect(const std::string& path, std::chrono::milliseconds timeout);
// Binds and listens on path (an existing socket file there is replaced).
Result<UniqueFd> unix_listen(const std::string& path, int backlog = 16);

// Full writes and reads, retrying on EINTR/short transfers. read_exact fails with kProtocol on EOF.
Result<> write_all(int fd, std::string_view data);
Result<> read_exact(int fd, void* buf, size_t len);
// Waits until fd is readable; false on timeout.
Result<bool> wait_readable(int fd, std::chrono::milliseconds timeout);

}  // namespace fcvm
