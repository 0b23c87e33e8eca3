#include "fcvm/net/nftables.hpp"

#include <fmt/format.h>

#include <cstdint>

#include "fcvm/util/strings.hpp"

namespace fcvm::net::nft {
namespace {

// The base chains of the host table: name and specification. Output uses the number: `dstnat`
// is a prerouting name. scripts/setup-nftables.sh creates the very same chains.
struct BaseChain {
  const char* name;
  const char* spec;
};
constexpr BaseChain k_host_chains[] = {
    {"prerouting", "type nat hook prerouting priority dstnat; policy accept;"},
    {"output", "type nat hook output priority -100; policy accept;"},
    {"postrouting", "type nat hook postrouting priority srcnat; policy accept;"},
};

bool is_loopback(const std::string& ip) { return ip.rfind("127.", 0) == 0; }
bool is_wildcard(const std::string& ip) { return ip == "0.0.0.0"; }

// "ip daddr 127.0.0.1 tcp dport 8080" or, for 0.0.0.0, every local address.
std::string match_host_port(const PortMapping& p) {
  auto proto = proto_name(p.proto);
  if (is_wildcard(p.host_ip)) {
    return fmt::format("meta nfproto ipv4 fib daddr type local {} dport {}", proto, p.host_port);
  }
  return fmt::format("ip daddr {} {} dport {}", p.host_ip, proto, p.host_port);
}

std::string render_table(
    const std::string& family_name,
    const std::vector<std::pair<BaseChain, std::vector<std::string>>>& chains) {
  std::string out = fmt::format("table {} {{\n", family_name);
  bool first = true;
  for (const auto& [chain, rules] : chains) {
    if (!first) out += "\n";
    first = false;
    out += fmt::format("\tchain {} {{\n\t\t{}\n", chain.name, chain.spec);
    for (const auto& r : rules) out += fmt::format("\t\t{}\n", r);
    out += "\t}\n";
  }
  out += "}\n";
  return out;
}

}  // namespace

std::string rule_tag(std::string_view vm_id) { return fmt::format("fcvm:{}", vm_id); }

std::vector<Rule> host_rules(const HostTable& host, const VmRules& vm) {
  std::vector<Rule> rules;
  auto tagged = [&](const char* chain, std::string text) {
    rules.push_back({chain, fmt::format("{} comment \"{}\"", text, rule_tag(vm.vm_id))});
  };
  // prerouting: published ports reached from elsewhere (127.0.0.0/8 never arrives from outside).
  for (const auto& p : vm.ports) {
    if (is_loopback(p.host_ip)) continue;
    tagged("prerouting",
           fmt::format("{} dnat ip to {}:{}", match_host_port(p), vm.address, p.guest_port));
  }
  // The host's loopback, seen from the VM at the bridge address (the namespace DNATs the guest's
  // gateway there). Needs route_localnet on the bridge.
  auto from_vm =
      fmt::format("iifname \"{}\" ip saddr {} ip daddr {}", host.bridge, vm.address, host.gateway);
  if (!vm.loopback_dns.empty()) {
    for (const char* proto : {"udp", "tcp"}) {
      tagged("prerouting",
             fmt::format("{} {} dport 53 dnat ip to {}:53", from_vm, proto, vm.loopback_dns));
    }
  }
  if (vm.host_loopback) {
    tagged("prerouting", fmt::format("{} meta l4proto tcp dnat ip to 127.0.0.1", from_vm));
  }
  // output: published ports reached from this host.
  for (const auto& p : vm.ports) {
    tagged("output",
           fmt::format("{} dnat ip to {}:{}", match_host_port(p), vm.address, p.guest_port));
  }
  // postrouting: egress leaves with the host's address; DNATed connections from the host's
  // loopback or from another VM (hairpin) come from the bridge address so that replies return.
  tagged("postrouting",
         fmt::format("ip saddr {} oifname != \"{}\" masquerade", vm.address, host.bridge));
  if (!vm.ports.empty()) {
    tagged("postrouting", fmt::format("ip saddr 127.0.0.0/8 ip daddr {} oifname \"{}\" masquerade",
                                      vm.address, host.bridge));
    tagged("postrouting",
           fmt::format("iifname \"{0}\" ip daddr {1} oifname \"{0}\" ct status dnat masquerade",
                       host.bridge, vm.address));
  }
  return rules;
}

std::string render_host_base(const HostTable& host) {
  std::string out = fmt::format("add table inet {}\n", host.table);
  for (const auto& c : k_host_chains) {
    out += fmt::format("add chain inet {} {} {{ {} }}\n", host.table, c.name, c.spec);
  }
  return out;
}

std::string render_host_add(const HostTable& host, const VmRules& vm) {
  std::string out;
  for (const auto& r : host_rules(host, vm)) {
    out += fmt::format("add rule inet {} {} {}\n", host.table, r.chain, r.text);
  }
  return out;
}

std::string render_host_ruleset(const HostTable& host, const std::vector<VmRules>& vms) {
  std::vector<std::pair<BaseChain, std::vector<std::string>>> chains;
  for (const auto& c : k_host_chains) chains.push_back({c, {}});
  for (const auto& vm : vms) {
    for (const auto& r : host_rules(host, vm)) {
      for (auto& [chain, rules] : chains) {
        if (r.chain == chain.name) rules.push_back(r.text);
      }
    }
  }
  return render_table("inet " + host.table, chains);
}

std::vector<RuleRef> find_tagged_rules(std::string_view listing, std::string_view tag) {
  std::vector<RuleRef> out;
  std::string chain;
  auto comment = fmt::format("comment \"{}\"", tag);
  constexpr std::string_view k_handle = "# handle ";
  for (auto raw : split(listing, '\n')) {
    auto line = trim(raw);
    if (line.rfind("chain ", 0) == 0) {
      auto name = line.substr(6);
      chain = std::string(name.substr(0, name.find(' ')));
      continue;
    }
    // `comment "fcvm:ID"` followed by the end of the rule: ` # handle N`.
    auto c = line.find(comment);
    auto h = line.rfind(k_handle);
    if (c == std::string_view::npos || h == std::string_view::npos || chain.empty()) continue;
    if (trim(line.substr(c + comment.size(), h - c - comment.size())) != "") continue;
    auto handle = parse_int(trim(line.substr(h + k_handle.size())), 1, INT64_MAX);
    if (handle) out.push_back({chain, static_cast<long>(*handle)});
  }
  return out;
}

std::string render_delete(const HostTable& host, const std::vector<RuleRef>& rules) {
  std::string out;
  for (const auto& r : rules) {
    out += fmt::format("delete rule inet {} {} handle {}\n", host.table, r.chain, r.handle);
  }
  return out;
}

std::string render_namespace_ruleset(const NamespaceRules& ns) {
  std::vector<std::string> pre;
  // Published guest ports, once per protocol and port, arriving through the veth.
  std::vector<std::pair<Proto, int>> seen;
  for (const auto& p : ns.ports) {
    std::pair<Proto, int> key{p.proto, p.guest_port};
    bool dup = false;
    for (const auto& s : seen) dup = dup || s == key;
    if (dup) continue;
    seen.push_back(key);
    pre.push_back(fmt::format("iifname \"{}\" {} dport {} dnat ip to {}:{}", ns.uplink,
                              proto_name(p.proto), p.guest_port, ns.guest_ip, p.guest_port));
  }
  if (!ns.dns_upstream.empty()) {
    for (const char* proto : {"udp", "tcp"}) {
      pre.push_back(fmt::format("iifname \"{}\" ip daddr {} {} dport 53 dnat ip to {}:53", ns.tap,
                                ns.dns, proto, ns.dns_upstream));
    }
  }
  if (!ns.host_gateway.empty()) {
    pre.push_back(fmt::format("iifname \"{}\" ip daddr {} meta l4proto tcp dnat ip to {}", ns.tap,
                              ns.gateway, ns.host_gateway));
  }
  std::vector<std::string> post = {
      fmt::format("oifname \"{}\" ip saddr {} masquerade", ns.uplink, ns.guest_subnet)};
  // Nothing reaches the guest from outside unless it was DNATed (published) or answers it.
  std::vector<std::string> fwd = {
      fmt::format("iifname \"{}\" oifname \"{}\" accept", ns.tap, ns.uplink),
      fmt::format("iifname \"{}\" oifname \"{}\" ct state established,related accept", ns.uplink,
                  ns.tap),
      fmt::format("iifname \"{}\" oifname \"{}\" ct status dnat accept", ns.uplink, ns.tap),
  };
  return render_table(
      "inet fcvm_vm",
      {{{"prerouting", "type nat hook prerouting priority dstnat; policy accept;"}, pre},
       {{"postrouting", "type nat hook postrouting priority srcnat; policy accept;"}, post},
       {{"forward", "type filter hook forward priority filter; policy drop;"}, fwd}});
}

}  // namespace fcvm::net::nft
