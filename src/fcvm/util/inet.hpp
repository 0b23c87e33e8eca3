#pragma once
// IPv4 socket helpers: the few things fcvm does with inet sockets outside a network namespace.
#include <string>

#include "fcvm/util/result.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm {

// A socket (TCP or UDP) bound to ADDRESS:PORT (port 0: the kernel picks one). The errno of a
// failed bind is kept (EADDRINUSE, EACCES, EADDRNOTAVAIL), kInvalidInput for a bad address.
Result<UniqueFd> inet_bind(const std::string& address, int port, bool udp = false);
// The port a bound socket has.
Result<int> inet_bound_port(int fd);
// A TCP port on ADDRESS free right now (bound and released: the caller's server binds it next).
Result<int> free_tcp_port(const std::string& address);
// Something accepts TCP connections on ADDRESS:PORT.
bool tcp_port_open(const std::string& address, int port);

}  // namespace fcvm
