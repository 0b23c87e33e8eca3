#include "fcvm/net/publish.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "fcvm/util/inet.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::net {

std::string_view proto_name(Proto p) { return p == Proto::kTcp ? "tcp" : "udp"; }

std::string PortMapping::to_string() const {
  return fmt::format("{}:{}:{}/{}", host_ip, host_port, guest_port, proto_name(proto));
}

Result<PortMapping> parse_publish(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return fail(
        ErrorCode::kInvalidInput,
        fmt::format("invalid --publish \"{}\": {} (expected [IP:]HOSTPORT:GUESTPORT[/tcp|/udp])",
                    text, why));
  };
  PortMapping m;
  std::string_view spec = text;
  if (auto slash = spec.find('/'); slash != std::string_view::npos) {
    auto proto = spec.substr(slash + 1);
    if (proto == "tcp") {
      m.proto = Proto::kTcp;
    } else if (proto == "udp") {
      m.proto = Proto::kUdp;
    } else {
      return bad(fmt::format("unknown protocol \"{}\"", proto));
    }
    spec = spec.substr(0, slash);
  }
  auto parts = split(spec, ':');
  if (parts.size() == 3) {
    in_addr addr{};
    std::string ip(parts[0]);
    if (::inet_pton(AF_INET, ip.c_str(), &addr) != 1) {
      return bad(fmt::format("\"{}\" is not an IPv4 address", ip));
    }
    m.host_ip = ip;
    parts.erase(parts.begin());
  } else if (parts.size() != 2) {
    return bad("wrong number of fields");
  }
  auto host_port = parse_int(parts[0], 1, 65535);
  if (!host_port) return bad(fmt::format("host port \"{}\" is not a number in 1-65535", parts[0]));
  auto guest_port = parse_int(parts[1], 1, 65535);
  if (!guest_port)
    return bad(fmt::format("guest port \"{}\" is not a number in 1-65535", parts[1]));
  m.host_port = static_cast<int>(*host_port);
  m.guest_port = static_cast<int>(*guest_port);
  return m;
}

bool host_ports_overlap(const PortMapping& a, const PortMapping& b) {
  bool overlap_ip = a.host_ip == b.host_ip || a.host_ip == "0.0.0.0" || b.host_ip == "0.0.0.0";
  return a.proto == b.proto && a.host_port == b.host_port && overlap_ip;
}

Result<> check_unique(const std::vector<PortMapping>& ports) {
  for (size_t i = 0; i < ports.size(); ++i) {
    for (size_t j = i + 1; j < ports.size(); ++j) {
      const auto& a = ports[i];
      const auto& b = ports[j];
      if (host_ports_overlap(a, b)) {
        return fail(ErrorCode::kInvalidInput,
                    fmt::format("--publish {} and {} use the same host port", a.to_string(),
                                b.to_string()));
      }
    }
  }
  return {};
}

Result<> check_host_ports_free(const std::vector<PortMapping>& ports) {
  for (const auto& p : ports) {
    auto bound = inet_bind(p.host_ip, p.host_port, p.proto == Proto::kUdp);
    if (!bound) {
      int e = bound.error().sys_errno();
      std::string why = e == EADDRINUSE      ? "is already in use"
                        : e == EACCES        ? "needs privileges (ports below 1024 need root)"
                        : e == EADDRNOTAVAIL ? "is not an address of this host"
                        : e == 0             ? bound.error().message()
                                             : std::strerror(e);
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("--publish {}: host port {}:{}/{} {}", p.to_string(), p.host_ip,
                              p.host_port, proto_name(p.proto), why));
    }
  }
  return {};
}

}  // namespace fcvm::net
