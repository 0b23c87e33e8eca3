#pragma once
// nftables rules of privileged networking, rendered as text (pure: no I/O; privileged.cpp applies
// them with `nft`, one transaction per change). network/nftables-template.nft is the rendering
// of an example and a unit test keeps the two in sync.
//
// Host (root namespace): one `table inet fcvm` and nothing else is ever touched. Its three base
// chains hold no rules of their own; every rule belongs to one VM and carries the comment
// "fcvm:<vm id>", which is how teardown (or clean-up after a kill -9) finds and deletes exactly
// that VM's rules:
//   prerouting   DNAT of published ports reached from other hosts; the VM's access to the host's
//                loopback (registry on 127.0.0.1, loopback DNS resolver) when it needs it
//   output       DNAT of published ports reached from this host (127.0.0.1 included)
//   postrouting  masquerade of the VM's egress; masquerade of connections DNATed from the host's
//                loopback (they must not leave 127.0.0.1 as their source) or from another VM
//
// VM namespace: `table inet fcvm_vm`, created once with the namespace and gone with it: DNAT of
// the published guest ports to the guest, DNS to the host's resolver, masquerade out, and a
// forward filter that lets nothing reach the guest unless it was published.
#include <string>
#include <string_view>
#include <vector>

#include "fcvm/net/publish.hpp"

namespace fcvm::net::nft {

// The host-wide part: the same for every VM.
struct HostTable {
  std::string table = "fcvm";          // table inet <table>
  std::string bridge = "fcvm0";        // the VMs' veths are its ports
  std::string gateway = "172.31.0.1";  // the bridge's address: the VM namespaces' default route
};

// One VM as the host table sees it.
struct VmRules {
  std::string vm_id;
  std::string address;  // the VM's host-side address (its namespace's end of the veth)
  std::vector<PortMapping> ports{};
  bool host_loopback = false;  // may reach the host's 127.0.0.1 (TCP) through the gateway
  std::string loopback_dns{};  // the host's resolver when it listens on loopback (else empty)
};

struct Rule {
  std::string chain;
  std::string text;
  bool operator==(const Rule&) const = default;
};

std::string rule_tag(std::string_view vm_id);  // "fcvm:<vm id>"

// The VM's rules in the host table, in order, each ending with its tag comment.
std::vector<Rule> host_rules(const HostTable& host, const VmRules& vm);
// An `nft` script creating the table and its base chains; `add` leaves existing ones alone (but
// costs a hook update each time, so it is only sent when the rules cannot be added without it).
std::string render_host_base(const HostTable& host);
// An `nft` script adding the VM's rules (the table and its chains must exist).
std::string render_host_add(const HostTable& host, const VmRules& vm);
// The whole host table for a set of VMs, as `nft -f` reads it (documentation and tests).
std::string render_host_ruleset(const HostTable& host, const std::vector<VmRules>& vms);

// A rule found in `nft -a list table inet <table>` output.
struct RuleRef {
  std::string chain;
  long handle = 0;
  bool operator==(const RuleRef&) const = default;
};
// The rules whose comment is exactly `tag`.
std::vector<RuleRef> find_tagged_rules(std::string_view listing, std::string_view tag);
// An `nft` script deleting those rules (empty when there are none).
std::string render_delete(const HostTable& host, const std::vector<RuleRef>& rules);

// The VM namespace's table.
struct NamespaceRules {
  std::string uplink = "eth0";  // the namespace's end of the veth
  std::string tap = "tap0";
  std::string guest_ip = "10.0.2.15";
  std::string guest_subnet = "10.0.2.0/24";
  std::string gateway = "10.0.2.2";  // the tap's address
  std::string dns = "10.0.2.3";      // answered by the namespace, DNATed to dns_upstream
  std::string dns_upstream{};        // empty: no DNS for the guest
  std::string host_gateway{};        // non-empty: TCP to `gateway` goes to this host address
  std::vector<PortMapping> ports{};  // the guest ports published (host side ignored)
};
std::string render_namespace_ruleset(const NamespaceRules& ns);

}  // namespace fcvm::net::nft
