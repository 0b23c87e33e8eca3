#pragma once
// Rootless networking. Topology of one VM (everything below lives in the VM's own namespaces,
// which die with the holder process, so nothing leaks into the host's network):
//
//   host (127.0.0.1:HOSTPORT) <-- slirp4netns (user-space TCP/IP, port forwards, egress)
//                                     |  tap "slirp0"
//   user+net namespace (holder) ---- bridge "br0" ---- tap "tap0" <-- VMM (virtio-net)
//                                                                       guest eth0 10.0.2.15/24
//
// slirp4netns answers as the gateway 10.0.2.2 (which also reaches the host's loopback when
// allowed) and DNS 10.0.2.3. Non-root users get a user namespace too (they map only themselves,
// no subordinate ids needed); root gets a network namespace only. Both backends use this layout.
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

#include "fcvm/net/publish.hpp"
#include "fcvm/sys/command_runner.hpp"
#include "fcvm/util/child_process.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::net {

// The guest side of the network: identical in every VM and clone (each has its own namespace).
struct GuestNetwork {
  std::string address = "10.0.2.15/24";
  std::string ip = "10.0.2.15";
  std::string gateway = "10.0.2.2";
  std::vector<std::string> dns{"10.0.2.3"};
  std::string mac = "06:00:0a:00:02:0f";
  int mtu = 1500;
};

struct RootlessConfig {
  std::string dir;  // where the slirp4netns API socket and its log go
  std::vector<PortMapping> ports{};
  bool allow_host_loopback = false;  // guest may reach the host's 127.0.0.1 through the gateway
};

// A process that sits in fresh namespaces and holds them alive; killing it (or its parent dying)
// releases them together with every device inside.
class NamespaceHolder {
 public:
  static Result<NamespaceHolder> create(bool with_user_namespace);
  pid_t pid() const { return m_process.pid(); }
  bool has_user_namespace() const { return m_user; }
  ChildProcess& process() { return m_process; }

 private:
  ChildProcess m_process;
  bool m_user = false;
};

class RootlessNetwork {
 public:
  static Result<std::unique_ptr<RootlessNetwork>> create(const RootlessConfig& config,
                                                         sys::CommandRunner& runner);
  ~RootlessNetwork();
  RootlessNetwork(const RootlessNetwork&) = delete;
  RootlessNetwork& operator=(const RootlessNetwork&) = delete;

  pid_t holder_pid() const { return m_holder.pid(); }
  pid_t helper_pid() const { return m_slirp.pid(); }
  const std::string& tap() const { return m_tap; }
  const GuestNetwork& guest() const { return m_guest; }
  // Gives up ownership of the processes (a monitor that outlives us keeps them).
  void detach();

 private:
  RootlessNetwork() = default;
  Result<> add_port_forward(const PortMapping& port);

  NamespaceHolder m_holder;
  ChildProcess m_slirp;
  UniqueFd m_slirp_exit_fd;  // slirp4netns exits when this (write end) closes
  std::string m_api_socket;
  std::string m_tap = "tap0";
  GuestNetwork m_guest;
};

}  // namespace fcvm::net
