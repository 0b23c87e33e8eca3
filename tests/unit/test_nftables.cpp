// Privileged networking, the parts without side effects: the nftables rules rendered for a set of
// VMs (exact text), finding a VM's rules in `nft -a list` output, the namespace's rules, and the
// host-side address book (allocation, reuse, port claims, the locked book on disk).
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fcvm/net/address_pool.hpp"
#include "fcvm/net/nftables.hpp"
#include "fcvm/net/privileged.hpp"
#include "fcvm/sys/process_identity.hpp"
#include "fcvm/util/fs.hpp"
#include "scratch.hpp"

using namespace fcvm;
using namespace fcvm::net;

namespace {

PortMapping port(const char* spec) { return *parse_publish(spec); }

const char* k_id_a = "0123456789abcdef0123456789abcdef";
const char* k_id_b = "fedcba9876543210fedcba9876543210";

// The two VMs of network/nftables-template.nft.
nft::VmRules vm_a() {
  return {k_id_a, "172.31.0.2", {port("8080:80"), port("0.0.0.0:5353:53/udp")}, false, {}};
}
nft::VmRules vm_b() {
  return {k_id_b, "172.31.0.3", {port("192.0.2.10:8443:443")}, true, "127.0.0.53"};
}

const char* k_zero_vms = R"(table inet fcvm {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
	}

	chain output {
		type nat hook output priority -100; policy accept;
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
	}
}
)";

const char* k_one_vm = R"(table inet fcvm {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		meta nfproto ipv4 fib daddr type local udp dport 5353 dnat ip to 172.31.0.2:53 comment "fcvm:0123456789abcdef0123456789abcdef"
	}

	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr 127.0.0.1 tcp dport 8080 dnat ip to 172.31.0.2:80 comment "fcvm:0123456789abcdef0123456789abcdef"
		meta nfproto ipv4 fib daddr type local udp dport 5353 dnat ip to 172.31.0.2:53 comment "fcvm:0123456789abcdef0123456789abcdef"
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 172.31.0.2 oifname != "fcvm0" masquerade comment "fcvm:0123456789abcdef0123456789abcdef"
		ip saddr 127.0.0.0/8 ip daddr 172.31.0.2 oifname "fcvm0" masquerade comment "fcvm:0123456789abcdef0123456789abcdef"
		iifname "fcvm0" ip daddr 172.31.0.2 oifname "fcvm0" ct status dnat masquerade comment "fcvm:0123456789abcdef0123456789abcdef"
	}
}
)";

const char* k_two_vms = R"(table inet fcvm {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		meta nfproto ipv4 fib daddr type local udp dport 5353 dnat ip to 172.31.0.2:53 comment "fcvm:0123456789abcdef0123456789abcdef"
		ip daddr 192.0.2.10 tcp dport 8443 dnat ip to 172.31.0.3:443 comment "fcvm:fedcba9876543210fedcba9876543210"
		iifname "fcvm0" ip saddr 172.31.0.3 ip daddr 172.31.0.1 udp dport 53 dnat ip to 127.0.0.53:53 comment "fcvm:fedcba9876543210fedcba9876543210"
		iifname "fcvm0" ip saddr 172.31.0.3 ip daddr 172.31.0.1 tcp dport 53 dnat ip to 127.0.0.53:53 comment "fcvm:fedcba9876543210fedcba9876543210"
		iifname "fcvm0" ip saddr 172.31.0.3 ip daddr 172.31.0.1 meta l4proto tcp dnat ip to 127.0.0.1 comment "fcvm:fedcba9876543210fedcba9876543210"
	}

	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr 127.0.0.1 tcp dport 8080 dnat ip to 172.31.0.2:80 comment "fcvm:0123456789abcdef0123456789abcdef"
		meta nfproto ipv4 fib daddr type local udp dport 5353 dnat ip to 172.31.0.2:53 comment "fcvm:0123456789abcdef0123456789abcdef"
		ip daddr 192.0.2.10 tcp dport 8443 dnat ip to 172.31.0.3:443 comment "fcvm:fedcba9876543210fedcba9876543210"
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 172.31.0.2 oifname != "fcvm0" masquerade comment "fcvm:0123456789abcdef0123456789abcdef"
		ip saddr 127.0.0.0/8 ip daddr 172.31.0.2 oifname "fcvm0" masquerade comment "fcvm:0123456789abcdef0123456789abcdef"
		iifname "fcvm0" ip daddr 172.31.0.2 oifname "fcvm0" ct status dnat masquerade comment "fcvm:0123456789abcdef0123456789abcdef"
		ip saddr 172.31.0.3 oifname != "fcvm0" masquerade comment "fcvm:fedcba9876543210fedcba9876543210"
		ip saddr 127.0.0.0/8 ip daddr 172.31.0.3 oifname "fcvm0" masquerade comment "fcvm:fedcba9876543210fedcba9876543210"
		iifname "fcvm0" ip daddr 172.31.0.3 oifname "fcvm0" ct status dnat masquerade comment "fcvm:fedcba9876543210fedcba9876543210"
	}
}
)";

const char* k_namespace = R"(table inet fcvm_vm {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "eth0" tcp dport 80 dnat ip to 10.0.2.15:80
		iifname "eth0" udp dport 53 dnat ip to 10.0.2.15:53
		iifname "tap0" ip daddr 10.0.2.3 udp dport 53 dnat ip to 192.0.2.53:53
		iifname "tap0" ip daddr 10.0.2.3 tcp dport 53 dnat ip to 192.0.2.53:53
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth0" ip saddr 10.0.2.0/24 masquerade
	}

	chain forward {
		type filter hook forward priority filter; policy drop;
		iifname "tap0" oifname "eth0" accept
		iifname "eth0" oifname "tap0" ct state established,related accept
		iifname "eth0" oifname "tap0" ct status dnat accept
	}
}
)";

std::string temp_dir() { return test::scratch_path("leases"); }

Lease lease(const std::string& address, const std::string& vm,
            std::vector<PortMapping> ports = {}) {
  return {address, vm, sys::ProcessIdentity::of(::getpid()), std::move(ports), "fcvm-" + vm};
}

}  // namespace

TEST(Nftables, RulesetForNoVmIsTheBaseChains) {
  EXPECT_EQ(nft::render_host_ruleset({}, {}), k_zero_vms);
}

TEST(Nftables, RulesetForOneVm) { EXPECT_EQ(nft::render_host_ruleset({}, {vm_a()}), k_one_vm); }

TEST(Nftables, RulesetForTwoVmsWithSeveralPorts) {
  EXPECT_EQ(nft::render_host_ruleset({}, {vm_a(), vm_b()}), k_two_vms);
}

TEST(Nftables, AddScriptIsOneTransactionOfTaggedRules) {
  EXPECT_EQ(nft::render_host_base({}),
            "add table inet fcvm\n"
            "add chain inet fcvm prerouting { type nat hook prerouting priority dstnat; policy "
            "accept; }\n"
            "add chain inet fcvm output { type nat hook output priority -100; policy accept; }\n"
            "add chain inet fcvm postrouting { type nat hook postrouting priority srcnat; policy "
            "accept; }\n");
  EXPECT_EQ(
      nft::render_host_add({}, vm_a()),
      R"(add rule inet fcvm prerouting meta nfproto ipv4 fib daddr type local udp dport 5353 dnat ip to 172.31.0.2:53 comment "fcvm:0123456789abcdef0123456789abcdef"
add rule inet fcvm output ip daddr 127.0.0.1 tcp dport 8080 dnat ip to 172.31.0.2:80 comment "fcvm:0123456789abcdef0123456789abcdef"
add rule inet fcvm output meta nfproto ipv4 fib daddr type local udp dport 5353 dnat ip to 172.31.0.2:53 comment "fcvm:0123456789abcdef0123456789abcdef"
add rule inet fcvm postrouting ip saddr 172.31.0.2 oifname != "fcvm0" masquerade comment "fcvm:0123456789abcdef0123456789abcdef"
add rule inet fcvm postrouting ip saddr 127.0.0.0/8 ip daddr 172.31.0.2 oifname "fcvm0" masquerade comment "fcvm:0123456789abcdef0123456789abcdef"
add rule inet fcvm postrouting iifname "fcvm0" ip daddr 172.31.0.2 oifname "fcvm0" ct status dnat masquerade comment "fcvm:0123456789abcdef0123456789abcdef"
)");
  // A VM without published ports only gets its egress.
  nft::VmRules quiet{k_id_b, "172.31.0.3", {}, false, {}};
  EXPECT_EQ(nft::render_host_add({}, quiet),
            "add rule inet fcvm postrouting ip saddr 172.31.0.3 oifname != \"fcvm0\" masquerade "
            "comment \"fcvm:fedcba9876543210fedcba9876543210\"\n");
}

TEST(Nftables, OtherTableAndBridgeNames) {
  nft::HostTable host{"lab", "labbr", "10.99.0.1"};
  nft::VmRules vm{"abc", "10.99.0.7", {port("9000:90")}, false, {}};
  auto rules = nft::host_rules(host, vm);
  ASSERT_EQ(rules.size(), 4u);
  EXPECT_EQ(rules[0], (nft::Rule{"output",
                                 "ip daddr 127.0.0.1 tcp dport 9000 dnat ip to "
                                 "10.99.0.7:90 comment \"fcvm:abc\""}));
  EXPECT_EQ(rules[1].text,
            "ip saddr 10.99.0.7 oifname != \"labbr\" masquerade comment \"fcvm:abc\"");
  EXPECT_NE(nft::render_host_add(host, vm).find("add rule inet lab output "), std::string::npos);
}

TEST(Nftables, FindsExactlyTheTaggedRulesInAListing) {
  // As `nft -a list table inet fcvm` prints it; the second VM's id extends the first one's.
  const char* listing = R"(table inet fcvm { # handle 7
	chain prerouting { # handle 1
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 192.0.2.10 tcp dport 8443 dnat ip to 172.31.0.3:443 comment "fcvm:abc" # handle 12
	}

	chain output { # handle 2
		type nat hook output priority -100; policy accept;
		ip daddr 127.0.0.1 tcp dport 8080 dnat ip to 172.31.0.2:80 comment "fcvm:abc" # handle 13
		ip daddr 127.0.0.1 tcp dport 8081 dnat ip to 172.31.0.4:80 comment "fcvm:abcd" # handle 14
	}

	chain postrouting { # handle 3
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 172.31.0.2 oifname != "fcvm0" masquerade comment "fcvm:abc" # handle 15
		ip saddr 172.31.0.4 oifname != "fcvm0" masquerade comment "fcvm:abcd" # handle 16
	}
}
)";
  auto refs = nft::find_tagged_rules(listing, nft::rule_tag("abc"));
  std::vector<nft::RuleRef> want = {{"prerouting", 12}, {"output", 13}, {"postrouting", 15}};
  EXPECT_EQ(refs, want);
  EXPECT_EQ(nft::render_delete({}, refs),
            "delete rule inet fcvm prerouting handle 12\n"
            "delete rule inet fcvm output handle 13\n"
            "delete rule inet fcvm postrouting handle 15\n");
  EXPECT_TRUE(nft::find_tagged_rules(listing, nft::rule_tag("zzz")).empty());
  EXPECT_EQ(nft::render_delete({}, {}), "");
}

TEST(Nftables, NamespaceRulesetDedupesGuestPorts) {
  nft::NamespaceRules ns;
  ns.dns_upstream = "192.0.2.53";
  ns.ports = vm_a().ports;
  EXPECT_EQ(nft::render_namespace_ruleset(ns), k_namespace);
  ns.ports.push_back(port("8081:80"));  // a second host port for the same guest port
  EXPECT_EQ(nft::render_namespace_ruleset(ns), k_namespace);
}

TEST(Nftables, NamespaceRulesetWithHostLoopbackAndNoDns) {
  nft::NamespaceRules ns;
  ns.host_gateway = "172.31.0.1";
  auto text = nft::render_namespace_ruleset(ns);
  EXPECT_NE(text.find("\t\tiifname \"tap0\" ip daddr 10.0.2.2 meta l4proto tcp dnat ip to "
                      "172.31.0.1\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("dport 53"), std::string::npos) << text;
}

// network/nftables-template.nft is these renderings plus comments.
TEST(Nftables, TemplateFileIsInSyncWithTheCode) {
  auto text = read_file(std::string(FCVM_SOURCE_DIR) + "/network/nftables-template.nft");
  ASSERT_TRUE(text) << text.error().to_string();
  std::string rules;
  size_t pos = 0;
  while (pos < text->size()) {
    auto end = text->find('\n', pos);
    auto line = text->substr(pos, end == std::string::npos ? std::string::npos : end + 1 - pos);
    if (line.rfind("#", 0) != 0) rules += line;
    pos = end == std::string::npos ? text->size() : end + 1;
  }
  nft::NamespaceRules ns;
  ns.dns_upstream = "192.0.2.53";
  ns.ports = vm_a().ports;
  EXPECT_EQ(rules, nft::render_host_ruleset({}, {vm_a(), vm_b()}) + "\n" +
                       nft::render_namespace_ruleset(ns));
}

TEST(AddressPool, ParsesTheBridgeAddress) {
  auto s = parse_cidr("172.31.0.1/16");
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(format_ipv4(s->network), "172.31.0.0");
  EXPECT_EQ(format_ipv4(s->broadcast()), "172.31.255.255");
  EXPECT_EQ(s->own_text(), "172.31.0.1");
  for (const char* bad : {"172.31.0.1", "172.31.0.1/33", "172.31.0.1/x", "300.1.1.1/16",
                          "172.31.0.0/16", "172.31.255.255/16", "10.0.0.1/31"}) {
    auto r = parse_cidr(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
    EXPECT_NE(r.error().message().find(bad), std::string::npos) << r.error().message();
  }
}

TEST(AddressPool, AllocatesTheLowestFreeAddressAndReusesFreedOnes) {
  auto subnet = *parse_cidr("172.31.0.1/16");
  std::vector<Lease> leases;
  EXPECT_EQ(*pick_address(subnet, leases), "172.31.0.2");  // .0 network, .1 the bridge
  leases.push_back(lease("172.31.0.2", "a"));
  leases.push_back(lease("172.31.0.3", "b"));
  leases.push_back(lease("172.31.0.4", "c"));
  EXPECT_EQ(*pick_address(subnet, leases), "172.31.0.5");
  leases.erase(leases.begin() + 1);  // b is removed: its address comes back first
  EXPECT_EQ(*pick_address(subnet, leases), "172.31.0.3");
}

TEST(AddressPool, CrossesOctetsAndReportsExhaustion) {
  auto subnet = *parse_cidr("10.9.0.1/23");
  std::vector<Lease> leases;
  for (int i = 2; i <= 255; ++i) leases.push_back(lease("10.9.0." + std::to_string(i), "x"));
  EXPECT_EQ(*pick_address(subnet, leases), "10.9.1.0");
  auto tiny = *parse_cidr("10.9.0.1/30");  // .0 network, .1 bridge, .2 the only VM, .3 broadcast
  EXPECT_EQ(*pick_address(tiny, {}), "10.9.0.2");
  auto full = pick_address(tiny, {lease("10.9.0.2", "x")});
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code(), ErrorCode::kUnavailable);
}

TEST(AddressPool, PublishedPortsAreClaimedOnce) {
  std::vector<Lease> leases = {
      lease("172.31.0.2", k_id_a, {port("8080:80"), port("0.0.0.0:53:53/udp")})};
  auto taken = check_ports_unclaimed({port("8080:81")}, leases);
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(taken.error().message().find("already in use (published by VM 0123456789ab)"),
            std::string::npos)
      << taken.error().message();
  EXPECT_FALSE(check_ports_unclaimed({port("0.0.0.0:8080:80")}, leases));      // overlaps 127.0.0.1
  EXPECT_FALSE(check_ports_unclaimed({port("192.0.2.1:53:53/udp")}, leases));  // overlaps 0.0.0.0
  EXPECT_TRUE(check_ports_unclaimed({port("8080:80/udp"), port("8081:80")}, leases));
  EXPECT_TRUE(check_ports_unclaimed({port("192.0.2.1:8080:80")}, leases));
}

TEST(AddressPool, LeaseBookRoundTripsUnderItsLock) {
  auto dir = temp_dir();
  EXPECT_TRUE(read_leases(dir).empty());  // no book yet
  {
    auto book = LeaseBook::lock(dir);
    ASSERT_TRUE(book) << book.error().to_string();
    EXPECT_TRUE(book->leases().empty());
    book->leases().push_back(lease("172.31.0.2", k_id_a, {port("8080:80")}));
    book->leases().push_back(lease("172.31.0.3", k_id_b));
    ASSERT_TRUE(book->save());
  }
  auto leases = read_leases(dir);
  ASSERT_EQ(leases.size(), 2u);
  EXPECT_EQ(leases[0].address, "172.31.0.2");
  EXPECT_EQ(leases[0].vm_id, k_id_a);
  EXPECT_EQ(leases[0].ports, std::vector<PortMapping>{port("8080:80")});
  EXPECT_EQ(leases[0].veth, std::string("fcvm-") + k_id_a);
  EXPECT_TRUE(leases[0].holder.alive());  // this process
  EXPECT_EQ(leases[1].vm_id, k_id_b);
  // A live VM's port is refused; a lease whose holder is gone claims nothing.
  EXPECT_FALSE(check_ports_not_published({port("8080:80")}, dir));
  {
    auto book = LeaseBook::lock(dir);
    ASSERT_TRUE(book);
    book->leases()[0].holder.pid = 0;  // as if its namespace holder had died
    ASSERT_TRUE(book->save());
  }
  EXPECT_TRUE(check_ports_not_published({port("8080:80")}, dir));
  (void)remove_all(dir);
}

TEST(AddressPool, CorruptBookIsAnErrorNotAnEmptyBook) {
  auto dir = temp_dir();
  ASSERT_TRUE(make_dirs(dir));
  ASSERT_TRUE(write_file_atomic(dir + "/leases.json", "{not json"));
  auto book = LeaseBook::lock(dir);
  ASSERT_FALSE(book);
  EXPECT_NE(book.error().message().find("leases.json"), std::string::npos)
      << book.error().message();
  (void)remove_all(dir);
}

TEST(Privileged, CleanupIgnoresOtherModes) {
  struct NoRunner : sys::CommandRunner {
    Result<std::string> run(const std::vector<std::string>& argv, pid_t) override {
      ADD_FAILURE() << "unexpected command " << argv[0];
      return std::string();
    }
  } runner;
  EXPECT_TRUE(cleanup_privileged("", runner));
  EXPECT_TRUE(cleanup_privileged(R"({"mode":"rootless","guest_address":"10.0.2.15/24"})", runner));
}

// After a kill -9 of its owner: the VM's rules go (by handle, one transaction) and its lease is
// freed; another VM's rules and lease stay.
TEST(Privileged, CleanupAfterKillRemovesTheVmsRulesAndLease) {
  struct Recorder : sys::CommandRunner {
    std::vector<std::vector<std::string>> calls;
    std::string listing = R"(table inet fcvm { # handle 7
	chain output { # handle 2
		type nat hook output priority -100; policy accept;
		ip daddr 127.0.0.1 tcp dport 8080 dnat ip to 172.31.0.2:80 comment "fcvm:0123456789abcdef0123456789abcdef" # handle 13
		ip daddr 127.0.0.1 tcp dport 8081 dnat ip to 172.31.0.3:80 comment "fcvm:fedcba9876543210fedcba9876543210" # handle 14
	}

	chain postrouting { # handle 3
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 172.31.0.2 oifname != "fcvm0" masquerade comment "fcvm:0123456789abcdef0123456789abcdef" # handle 15
	}
}
)";
    Result<std::string> run(const std::vector<std::string>& argv, pid_t) override {
      calls.push_back(argv);
      return argv.size() > 1 && argv[1] == "-a" ? listing : std::string();
    }
  } runner;
  auto dir = temp_dir();
  {
    auto book = LeaseBook::lock(dir);
    ASSERT_TRUE(book);
    auto dead = lease("172.31.0.2", k_id_a, {port("8080:80")});
    dead.holder = {};
    book->leases() = {dead, lease("172.31.0.3", k_id_b, {port("8081:80")})};
    ASSERT_TRUE(book->save());
  }
  auto json = nlohmann::json{{"mode", "privileged"},
                             {"vm_id", k_id_a},
                             {"veth", "fcvm-no-such-if"},
                             {"bridge", "fcvm0"},
                             {"bridge_address", "172.31.0.1/16"},
                             {"table", "fcvm"},
                             {"run_dir", dir},
                             {"holder", {{"pid", 0}, {"start_time", 0}, {"boot_id", ""}}}};
  auto r = cleanup_privileged(json.dump(), runner);
  ASSERT_TRUE(r) << r.error().to_string();
  std::vector<std::vector<std::string>> want = {
      {"nft", "-a", "list", "table", "inet", "fcvm"},
      {"nft",
       "delete rule inet fcvm output handle 13\ndelete rule inet fcvm postrouting handle 15\n"}};
  EXPECT_EQ(runner.calls, want);
  auto left = read_leases(dir);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].vm_id, k_id_b);
  // Idempotent: nothing of the VM is left to delete the second time.
  runner.listing = "table inet fcvm { # handle 7\n}\n";
  runner.calls.clear();
  ASSERT_TRUE(cleanup_privileged(json.dump(), runner));
  EXPECT_EQ(runner.calls.size(), 1u);  // the listing only
  (void)remove_all(dir);
}
