#pragma once
// Privileged networking (root): the kernel's data path, real addresses, nothing inbound unless
// published. Topology of one VM:
//
//   root namespace                         | VM namespace (held by a process)
//                                          |
//   host 127.0.0.1:8080 / IP:8080          |
//     -- nft DNAT (table inet fcvm) -->    |
//   bridge fcvm0 172.31.0.1/16 --- veth fcvm-<id10> === eth0 172.31.0.N/16 (default via .0.1)
//     (egress masqueraded out of the host) |   -- nft DNAT published ports, masquerade out,
//                                          |      forward filter (table inet fcvm_vm) -->
//                                          |   tap0 10.0.2.2/24 (+10.0.2.3 for DNS)
//                                          |     <-- VMM virtio-net -- guest eth0 10.0.2.15/24
//
// The guest's configuration is the same as in rootless mode and in every VM and clone (10.0.2.15,
// gateway 10.0.2.2, DNS 10.0.2.3): the namespace routes and NATs between its veth and the tap.
// What differs per VM is its host-side address 172.31.0.N, leased from a host-wide book
// (address_pool.hpp), and its rules in the host table, tagged with its id (nftables.hpp).
//
// Ownership: a PrivilegedNetwork owns the namespace holder, the veth, its host rules and its
// lease, and removes them all when destroyed. When the owning monitor is killed instead, the
// namespace (with the veth and tap) dies with the holder, and the VM's record keeps describe():
// cleanup_privileged() removes the host rules and the lease from it (vm::reconcile calls it), and
// any later privileged setup reclaims the leases of dead holders too.
//
// The host-wide part (bridge, route_localnet on it, ip_forward, the table and its base chains) is
// created on demand; scripts/setup-nftables.sh creates or removes it ahead of time.
#include <memory>
#include <string>
#include <vector>

#include "fcvm/net/network.hpp"
#include "fcvm/net/nftables.hpp"
#include "fcvm/net/publish.hpp"
#include "fcvm/net/rootless.hpp"
#include "fcvm/sys/command_runner.hpp"
#include "fcvm/sys/process_identity.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::net {

inline constexpr const char* k_default_run_dir = "/run/fcvm";

// The host-wide part, the same for every VM.
struct HostBridge {
  std::string name = "fcvm0";
  std::string cidr = "172.31.0.1/16";  // the bridge's address; VMs get the others of its subnet
  std::string table = "fcvm";          // table inet <table>
  std::string run_dir = k_default_run_dir;  // the lease book and its lock
};

struct PrivilegedConfig {
  std::string vm_id;
  std::string dir;  // the VM's directory (scratch files)
  std::vector<PortMapping> ports{};
  bool allow_host_loopback = false;  // guest may reach the host's 127.0.0.1 through the gateway
  std::optional<TapOwner> tap_owner{};
  HostBridge host{};
  std::string resolv_conf = "/etc/resolv.conf";  // where the guest's DNS upstream comes from
};

// Before anything is created: root (kInvalidInput: the user asked for what they may not have)
// and the `ip` and `nft` tools (kUnavailable).
Result<> check_privileged_available();
// kInvalidInput when a live privileged VM publishes one of these host ports (its DNAT rule holds
// the port without a listening socket, so a bind test cannot see it).
Result<> check_ports_not_published(const std::vector<PortMapping>& ports,
                                   const std::string& run_dir = k_default_run_dir);

class PrivilegedNetwork final : public VmNetwork {
 public:
  static Result<std::unique_ptr<PrivilegedNetwork>> create(const PrivilegedConfig& config,
                                                           sys::CommandRunner& runner);
  ~PrivilegedNetwork() override;
  PrivilegedNetwork(const PrivilegedNetwork&) = delete;
  PrivilegedNetwork& operator=(const PrivilegedNetwork&) = delete;

  pid_t holder_pid() const override { return m_holder.pid(); }
  pid_t helper_pid() const override { return 0; }
  const std::string& tap() const override { return m_tap; }
  const GuestNetwork& guest() const override { return m_guest; }
  nlohmann::json describe() const override;
  void detach() override;

  const std::string& host_address() const { return m_address; }

 private:
  PrivilegedNetwork(sys::CommandRunner& runner) : m_runner(runner) {}
  Result<> set_up_host(const PrivilegedConfig& config);
  Result<> set_up_namespace(const PrivilegedConfig& config);
  void release();

  sys::CommandRunner& m_runner;
  NamespaceHolder m_holder;  // first: destroyed last, after the rules are gone
  sys::ProcessIdentity m_holder_id;
  HostBridge m_host;
  std::string m_vm_id;
  std::string m_address;  // empty until leased
  std::string m_veth;
  std::vector<PortMapping> m_ports;
  bool m_host_loopback = false;
  bool m_rules_added = false;
  bool m_detached = false;
  std::string m_tap = "tap0";
  GuestNetwork m_guest;
};

// Undoes what a privileged VM left on the host, from its describe() JSON, once its owner is gone:
// kills its namespace holder if it still runs, deletes its host rules and veth, frees its lease.
// Idempotent; does nothing for other modes.
Result<> cleanup_privileged(const std::string& network_json, sys::CommandRunner& runner);

// Frees the leases (with their rules and veths) of every privileged VM whose namespace holder is
// gone: what a monitor killed after taking its lease but before recording its network left.
// Nothing to do (and nothing created) when there is no lease book or we are not root.
Result<> reclaim_stale_leases(sys::CommandRunner& runner, const HostBridge& host = {});

}  // namespace fcvm::net
