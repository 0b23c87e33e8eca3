#pragma once
// Which channel fc-agent talks to the host on, from the kernel command line:
//   fcvm.agent=serial:NAME   virtio-serial port NAME (QEMU)
//   fcvm.agent=vsock:PORT    listen on AF_VSOCK PORT (Firecracker's hybrid vsock)
//   fcvm.agent=unix:PATH     connect to a Unix socket (tests on the host; not for guests)
// Without the argument the agent uses serial:fcvm.agent.
#include <cstdint>
#include <string>
#include <string_view>

#include "fcvm/util/result.hpp"

namespace fcvm::agent {

inline constexpr const char* k_default_serial_port = "fcvm.agent";
inline constexpr uint32_t k_default_vsock_port = 1024;

enum class Transport { kSerial, kVsock, kUnix };

struct ChannelSpec {
  Transport transport = Transport::kSerial;
  std::string name = k_default_serial_port;  // serial: the port's name
  uint32_t port = k_default_vsock_port;      // vsock: the port the agent listens on
  std::string path{};                        // unix: the socket the agent connects to
};

// Parses "serial:NAME", "vsock:PORT" or "unix:PATH".
Result<ChannelSpec> parse_channel_spec(std::string_view text);

// Finds fcvm.agent=... in a kernel command line (the last one wins, as for kernel parameters);
// the default spec when absent.
Result<ChannelSpec> channel_from_cmdline(std::string_view cmdline);

std::string describe(const ChannelSpec& spec);

}  // namespace fcvm::agent
