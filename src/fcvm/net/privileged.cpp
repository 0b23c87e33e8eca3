#include "fcvm/net/privileged.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "fcvm/net/address_pool.hpp"
#include "fcvm/util/child_process.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/rollback.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fcvm::net {
namespace {

using namespace std::chrono_literals;

nft::HostTable host_table(const HostBridge& host, const Ipv4Subnet& subnet) {
  return {host.table, host.name, subnet.own_text()};
}

// A sysctl of the namespace we run in (the root namespace: the monitor never enters the VM's).
Result<> write_sysctl(const std::string& path, std::string_view value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return fail_errno(fmt::format("open {}", path));
  if (::write(fd.get(), value.data(), value.size()) < 0)
    return fail_errno(fmt::format("write {}", path));
  return {};
}

// A file read once by a helper and deleted: no need for the cost of an atomic, durable write.
Result<> write_scratch(const std::string& path, std::string_view text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return fail_errno(fmt::format("create {}", path));
  return write_all(fd.get(), text);
}

// The host's first IPv4 resolver (nullopt when there is none).
std::optional<std::string> host_resolver(const std::string& resolv_conf) {
  auto text = read_file(resolv_conf);
  if (!text) return std::nullopt;
  for (auto line : split(*text, '\n')) {
    auto t = trim(line);
    if (t.rfind("nameserver", 0) != 0) continue;
    auto addr = std::string(trim(t.substr(10)));
    if (parse_ipv4(addr)) return addr;
  }
  return std::nullopt;
}

// Deletes every rule of the host table carrying one of the tags, in one transaction. A missing
// table holds no rules.
Result<> remove_tagged_rules(sys::CommandRunner& runner, const nft::HostTable& host,
                             const std::vector<std::string>& tags) {
  auto listing = runner.run({"nft", "-a", "list", "table", "inet", host.table});
  if (!listing) {
    if (listing.error().message().find("No such file or directory") != std::string::npos) return {};
    return tl::unexpected<Error>(std::move(listing.error()).wrap("list the fcvm nftables table"));
  }
  std::vector<nft::RuleRef> rules;
  for (const auto& tag : tags) {
    auto found = nft::find_tagged_rules(*listing, tag);
    rules.insert(rules.end(), found.begin(), found.end());
  }
  if (rules.empty()) return {};
  FCVM_TRY_CTX(runner.run({"nft", nft::render_delete(host, rules)}), "delete nftables rules");
  return {};
}

// Deleting one end of a veth deletes both. Gone already (with its namespace) is fine.
void delete_link(sys::CommandRunner& runner, const std::string& name) {
  if (name.empty() || !path_exists("/sys/class/net/" + name)) return;
  if (auto r = runner.run({"ip", "link", "del", name});
      !r && path_exists("/sys/class/net/" + name)) {
    FCVM_LOG(kWarn, "net", "delete {}: {}", name, r.error().to_string());
  }
}

// Frees the leases of VMs whose namespace holder is gone, with their rules and veths.
Result<> reclaim_stale(LeaseBook& book, const nft::HostTable& host, sys::CommandRunner& runner) {
  std::vector<Lease> live, stale;
  for (auto& l : book.leases()) (l.holder.alive() ? live : stale).push_back(l);
  if (stale.empty()) return {};
  std::vector<std::string> tags;
  for (const auto& s : stale) {
    bool restarted = false;  // a live instance of the same VM owns the tag now
    for (const auto& l : live) restarted = restarted || l.vm_id == s.vm_id;
    if (restarted) continue;
    FCVM_LOG(kInfo, "net", "reclaiming {} of VM {} (its namespace is gone)", s.address, s.vm_id);
    tags.push_back(nft::rule_tag(s.vm_id));
    delete_link(runner, s.veth);
  }
  FCVM_TRY(remove_tagged_rules(runner, host, tags));
  book.leases() = std::move(live);
  return book.save();
}

// The bridge with its address, loopback DNAT allowed on it, forwarding on: created when missing.
Result<> ensure_host(const HostBridge& host, sys::CommandRunner& runner) {
  if (!path_exists("/sys/class/net/" + host.name)) {
    Rollback undo;
    FCVM_TRY_CTX(runner.run({"ip", "link", "add", host.name, "type", "bridge"}),
                 fmt::format("create bridge {}", host.name));
    undo.add("bridge", [&] { (void)runner.run({"ip", "link", "del", host.name}); });
    FCVM_TRY_CTX(runner.run({"ip", "addr", "add", host.cidr, "dev", host.name}),
                 fmt::format("address bridge {}", host.name));
    FCVM_TRY_CTX(runner.run({"ip", "link", "set", host.name, "up"}),
                 fmt::format("bring up bridge {}", host.name));
    undo.commit();
    FCVM_LOG(kInfo, "net", "created bridge {} ({})", host.name, host.cidr);
  }
  // Connections DNATed from 127.0.0.1 leave through the bridge with a loopback source until
  // masqueraded, and the VMs' access to the host's loopback arrives on it: both are martians
  // unless route_localnet allows them on this one interface.
  FCVM_TRY(write_sysctl(fmt::format("/proc/sys/net/ipv4/conf/{}/route_localnet", host.name), "1"));
  // The VMs' egress and their published ports reached from other hosts are routed by the host.
  auto forward = read_file("/proc/sys/net/ipv4/ip_forward");
  if (forward && trim(*forward) != "1") {
    FCVM_TRY(write_sysctl("/proc/sys/net/ipv4/ip_forward", "1"));
    FCVM_LOG(kInfo, "net", "set net.ipv4.ip_forward=1 (the VMs' traffic is routed by the host)");
  }
  return {};
}

}  // namespace

Result<> check_privileged_available() {
  if (::geteuid() != 0) {
    return fail(ErrorCode::kInvalidInput,
                "--network privileged needs root (it creates network namespaces, a bridge and "
                "nftables rules); use --network rootless as an ordinary user");
  }
  for (const char* tool : {"ip", "nft"}) {
    if (!find_executable(tool)) {
      return fail(ErrorCode::kUnavailable,
                  fmt::format("--network privileged needs `{}`, which is not installed: run "
                              "scripts/install-deps.sh run",
                              tool));
    }
  }
  return {};
}

Result<> check_ports_not_published(const std::vector<PortMapping>& ports,
                                   const std::string& run_dir) {
  std::vector<Lease> live;
  for (auto& l : read_leases(run_dir)) {
    if (l.holder.alive()) live.push_back(std::move(l));
  }
  return check_ports_unclaimed(ports, live);
}

Result<std::unique_ptr<PrivilegedNetwork>> PrivilegedNetwork::create(const PrivilegedConfig& config,
                                                                     sys::CommandRunner& runner) {
  std::unique_ptr<PrivilegedNetwork> net(new PrivilegedNetwork(runner));
  net->m_host = config.host;
  net->m_vm_id = config.vm_id;
  net->m_ports = config.ports;
  net->m_host_loopback = config.allow_host_loopback;
  net->m_veth = "fcvm-" + config.vm_id.substr(0, 10);
  // 1. The namespace: a network namespace only (we are root), routing on inside it. Whatever
  //    fails below, destroying `net` undoes what was done (release(), then the holder's death).
  auto holder = NamespaceHolder::create(false, true);
  if (!holder) return tl::unexpected<Error>(std::move(holder.error()).wrap("network namespace"));
  net->m_holder = std::move(*holder);
  net->m_holder_id = sys::ProcessIdentity::of(net->m_holder.pid());
  // 2. Host side, under the lease book's lock: address, bridge, veth, rules.
  FCVM_TRY(net->set_up_host(config));
  // 3. Inside the namespace: addresses, the tap, its rules.
  FCVM_TRY(net->set_up_namespace(config));
  return net;
}

Result<> PrivilegedNetwork::set_up_host(const PrivilegedConfig& config) {
  auto subnet = parse_cidr(m_host.cidr);
  if (!subnet) return tl::unexpected<Error>(subnet.error());
  auto table = host_table(m_host, *subnet);
  auto book = LeaseBook::lock(m_host.run_dir);
  if (!book) return tl::unexpected<Error>(std::move(book.error()).wrap("lease book"));
  FCVM_TRY_CTX(reclaim_stale(*book, table, m_runner), "reclaim the leases of gone VMs");
  // Two VMs never publish one host port (a concurrent run may have taken it since we checked).
  FCVM_TRY(check_ports_unclaimed(m_ports, book->leases()));
  auto address = pick_address(*subnet, book->leases());
  if (!address) return tl::unexpected<Error>(address.error());
  FCVM_TRY(ensure_host(m_host, m_runner));

  // The lease first: from here on, a crash leaves a record that says what to clean.
  m_address = *address;
  book->leases().push_back({m_address, m_vm_id, m_holder_id, m_ports, m_veth});
  FCVM_TRY(book->save());

  // The veth: the host end joins the bridge, the other end goes straight into the namespace.
  FCVM_TRY_CTX(
      m_runner.run({"ip", "link", "add", m_veth, "master", m_host.name, "up", "type", "veth",
                    "peer", "name", "eth0", "netns", std::to_string(m_holder.pid())}),
      "create veth " + m_veth);

  // The VM's rules (and the table and its base chains if missing), in one transaction.
  nft::VmRules rules{m_vm_id, m_address, m_ports, m_host_loopback, {}};
  auto resolver = host_resolver(config.resolv_conf);
  if (resolver && resolver->rfind("127.", 0) == 0) rules.loopback_dns = *resolver;
  // Usually the table is there; the first VM (or one after setup-nftables.sh remove) creates it,
  // in the same transaction as its rules.
  auto script = nft::render_host_add(table, rules);
  auto added = m_runner.run({"nft", script});
  if (!added && added.error().message().find("No such file or directory") != std::string::npos) {
    added = m_runner.run({"nft", nft::render_host_base(table) + script});
  }
  if (!added) {
    return tl::unexpected<Error>(
        std::move(added.error()).wrap("add nftables rules to table inet " + m_host.table));
  }
  m_rules_added = true;
  return {};
}

Result<> PrivilegedNetwork::set_up_namespace(const PrivilegedConfig& config) {
  auto subnet = parse_cidr(m_host.cidr);
  auto guest_net = parse_cidr(m_guest.address);
  if (!subnet || !guest_net) return fail(ErrorCode::kInternal, "bad built-in network addresses");
  pid_t ns = m_holder.pid();
  auto batch_path = config.dir + "/net.batch";
  auto batch = fmt::format(
      "link set lo up\n"
      "addr add {0}/{1} dev eth0\n"
      "link set eth0 up\n"
      "route add default via {2}\n"
      "tuntap add dev {3} mode tap{6}\n"
      "addr add {4}/{5} dev {3}\n",
      m_address, subnet->prefix, subnet->own_text(), m_tap, m_guest.gateway, guest_net->prefix,
      tap_owner_args(config.tap_owner));
  // The namespace answers for the guest's DNS address too (then DNATs it upstream).
  for (const auto& dns : m_guest.dns) batch += fmt::format("addr add {}/32 dev {}\n", dns, m_tap);
  batch += fmt::format("link set {} mtu {} up\n", m_tap, m_guest.mtu);
  FCVM_TRY(write_scratch(batch_path, batch));
  auto r = m_runner.run({"ip", "-batch", batch_path}, ns);
  ::unlink(batch_path.c_str());
  if (!r) return tl::unexpected<Error>(std::move(r.error()).wrap("set up network namespace"));

  nft::NamespaceRules rules;
  rules.tap = m_tap;
  rules.guest_ip = m_guest.ip;
  rules.guest_subnet = fmt::format("{}/{}", format_ipv4(guest_net->network), guest_net->prefix);
  rules.gateway = m_guest.gateway;
  rules.dns = m_guest.dns.empty() ? std::string() : m_guest.dns.front();
  auto resolver = host_resolver(config.resolv_conf);
  if (!resolver) {
    FCVM_LOG(kWarn, "net", "no IPv4 nameserver in {}: the guest has no DNS", config.resolv_conf);
  } else if (!rules.dns.empty()) {
    // A resolver on the host's loopback is reached through the bridge address (host rule).
    rules.dns_upstream = resolver->rfind("127.", 0) == 0 ? subnet->own_text() : *resolver;
  }
  if (m_host_loopback) rules.host_gateway = subnet->own_text();
  rules.ports = m_ports;
  FCVM_TRY_CTX(m_runner.run({"nft", nft::render_namespace_ruleset(rules)}, ns),
               "add nftables rules in the VM's namespace");
  return {};
}

nlohmann::json PrivilegedNetwork::describe() const {
  std::vector<std::string> published;
  for (const auto& p : m_ports) {
    published.push_back(fmt::format("{}:{} -> {}:{}/{}", p.host_ip, p.host_port, m_address,
                                    p.guest_port, proto_name(p.proto)));
  }
  return {{"mode", "privileged"},
          {"guest_address", m_guest.address},
          {"gateway", m_guest.gateway},
          {"dns", m_guest.dns},
          {"mac", m_guest.mac},
          {"host_loopback", m_host_loopback},
          {"host_address", m_address},
          {"bridge", m_host.name},
          {"bridge_address", m_host.cidr},
          {"veth", m_veth},
          {"published", published},
          // What cleanup_privileged needs when the owner is gone.
          {"vm_id", m_vm_id},
          {"table", m_host.table},
          {"run_dir", m_host.run_dir},
          {"holder",
           {{"pid", m_holder_id.pid},
            {"start_time", m_holder_id.start_time},
            {"boot_id", m_holder_id.boot_id}}}};
}

void PrivilegedNetwork::release() {
  if (m_detached || m_address.empty()) return;
  auto subnet = parse_cidr(m_host.cidr);
  auto book = LeaseBook::lock(m_host.run_dir);
  if (!book) {
    FCVM_LOG(kWarn, "net", "release {}: {}", m_address, book.error().to_string());
    return;
  }
  if (m_rules_added && subnet) {
    auto r = remove_tagged_rules(m_runner, host_table(m_host, *subnet), {nft::rule_tag(m_vm_id)});
    if (!r) FCVM_LOG(kWarn, "net", "remove the rules of VM {}: {}", m_vm_id, r.error().to_string());
  }
  delete_link(m_runner, m_veth);
  auto& leases = book->leases();
  std::erase_if(leases, [&](const Lease& l) {
    return l.vm_id == m_vm_id && l.holder.pid == m_holder_id.pid;
  });
  if (auto r = book->save(); !r) FCVM_LOG(kWarn, "net", "lease book: {}", r.error().to_string());
  m_address.clear();
}

PrivilegedNetwork::~PrivilegedNetwork() {
  release();
  // m_holder dies next, taking the namespace and the tap with it.
}

void PrivilegedNetwork::detach() {
  m_detached = true;
  m_holder.process().detach();
}

Result<> cleanup_privileged(const std::string& network_json, sys::CommandRunner& runner) {
  auto j = nlohmann::json::parse(network_json.empty() ? "null" : network_json, nullptr, false);
  if (!j.is_object() || j.value("mode", "") != "privileged") return {};
  HostBridge host;
  sys::ProcessIdentity holder;
  std::string vm_id, veth;
  try {
    vm_id = j.at("vm_id").get<std::string>();
    veth = j.value("veth", "");
    host.name = j.value("bridge", host.name);
    host.cidr = j.value("bridge_address", host.cidr);
    host.table = j.value("table", host.table);
    host.run_dir = j.value("run_dir", host.run_dir);
    const auto& h = j.at("holder");
    holder.pid = h.at("pid").get<pid_t>();
    holder.start_time = h.at("start_time").get<unsigned long long>();
    holder.boot_id = h.at("boot_id").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    return fail(ErrorCode::kInternal, fmt::format("the VM's network record: {}", e.what()));
  }
  // Its owner is gone: the holder goes too (it normally died with it already).
  if (holder.kill_if_alive()) {
    for (int i = 0; i < 200 && holder.alive(); ++i) std::this_thread::sleep_for(10ms);
  }
  auto subnet = parse_cidr(host.cidr);
  if (!subnet) return tl::unexpected<Error>(subnet.error());
  auto book = LeaseBook::lock(host.run_dir);
  if (!book) return tl::unexpected<Error>(std::move(book.error()).wrap("lease book"));
  bool restarted = false;  // a live instance of this VM owns its tag and veth name now
  for (const auto& l : book->leases())
    restarted = restarted || (l.vm_id == vm_id && l.holder.alive());
  if (!restarted) {
    FCVM_TRY(remove_tagged_rules(runner, host_table(host, *subnet), {nft::rule_tag(vm_id)}));
    delete_link(runner, veth);
  }
  auto& leases = book->leases();
  auto before = leases.size();
  std::erase_if(leases, [&](const Lease& l) { return l.vm_id == vm_id && !l.holder.alive(); });
  if (leases.size() != before) FCVM_TRY(book->save());
  return {};
}

Result<> reclaim_stale_leases(sys::CommandRunner& runner, const HostBridge& host) {
  if (::geteuid() != 0 || !path_exists(host.run_dir + "/leases.json")) return {};
  auto subnet = parse_cidr(host.cidr);
  if (!subnet) return tl::unexpected<Error>(subnet.error());
  auto book = LeaseBook::lock(host.run_dir);
  if (!book) return tl::unexpected<Error>(std::move(book.error()).wrap("lease book"));
  return reclaim_stale(*book, host_table(host, *subnet), runner);
}

}  // namespace fcvm::net
