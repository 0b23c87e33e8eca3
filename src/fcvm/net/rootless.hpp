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
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "fcvm/net/network.hpp"
#include "fcvm/net/publish.hpp"
#include "fcvm/sys/command_runner.hpp"
#include "fcvm/util/child_process.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::net {

struct RootlessConfig {
  std::string dir;  // where the slirp4netns API socket and its log go
  std::vector<PortMapping> ports{};
  bool allow_host_loopback = false;  // guest may reach the host's 127.0.0.1 through the gateway
  std::optional<TapOwner> tap_owner{};
};

// A process that sits in fresh namespaces and holds them alive; killing it (or its parent dying)
// releases them together with every device inside. `ip_forward`: routing between the namespace's
// interfaces is switched on inside it (privileged mode routes between the veth and the tap).
class NamespaceHolder {
 public:
  static Result<NamespaceHolder> create(bool with_user_namespace, bool ip_forward = false);
  pid_t pid() const { return m_process.pid(); }
  bool has_user_namespace() const { return m_user; }
  ChildProcess& process() { return m_process; }

 private:
  ChildProcess m_process;
  bool m_user = false;
};

class RootlessNetwork final : public VmNetwork {
 public:
  static Result<std::unique_ptr<RootlessNetwork>> create(const RootlessConfig& config,
                                                         sys::CommandRunner& runner);
  ~RootlessNetwork() override;
  RootlessNetwork(const RootlessNetwork&) = delete;
  RootlessNetwork& operator=(const RootlessNetwork&) = delete;

  pid_t holder_pid() const override { return m_holder.pid(); }
  pid_t helper_pid() const override { return m_slirp.pid(); }
  const std::string& tap() const override { return m_tap; }
  const GuestNetwork& guest() const override { return m_guest; }
  nlohmann::json describe() const override;
  // Gives up ownership of the processes (a monitor that outlives us keeps them).
  void detach() override;
  // Waits for slirp4netns and adds the port forwards (create() only starts slirp4netns).
  Result<> finish() override;

 private:
  RootlessNetwork() = default;
  Result<> add_port_forward(const PortMapping& port);

  UniqueFd m_slirp_ready;  // slirp4netns writes one byte here once it serves
  std::string m_slirp_log;
  std::vector<PortMapping> m_ports;
  bool m_finished = false;

  NamespaceHolder m_holder;
  ChildProcess m_slirp;
  UniqueFd m_slirp_exit_fd;  // slirp4netns exits when this (write end) closes
  std::string m_api_socket;
  std::string m_tap = "tap0";
  GuestNetwork m_guest;
  bool m_host_loopback = false;
};

}  // namespace fcvm::net
