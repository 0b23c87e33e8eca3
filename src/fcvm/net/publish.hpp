#pragma once
// --publish [IP:]HOSTPORT:GUESTPORT[/tcp|/udp]: parsing, validation and the host-port check.
#include <string>
#include <string_view>
#include <vector>

#include "fcvm/util/result.hpp"

namespace fcvm::net {

enum class Proto { kTcp, kUdp };

struct PortMapping {
  std::string host_ip = "127.0.0.1";  // loopback unless the user names an address
  int host_port = 0;
  int guest_port = 0;
  Proto proto = Proto::kTcp;

  std::string to_string() const;  // canonical "127.0.0.1:8080:80/tcp"
  bool operator==(const PortMapping&) const = default;
};

std::string_view proto_name(Proto p);
Result<PortMapping> parse_publish(std::string_view text);
// True when both claim one host port: same protocol and port, same address or 0.0.0.0 in either.
bool host_ports_overlap(const PortMapping& a, const PortMapping& b);
// Fails (kInvalidInput) when two mappings use the same host address/port/protocol.
Result<> check_unique(const std::vector<PortMapping>& ports);
// Binds each host address/port once to prove it is free and allowed for this user.
Result<> check_host_ports_free(const std::vector<PortMapping>& ports);

}  // namespace fcvm::net
