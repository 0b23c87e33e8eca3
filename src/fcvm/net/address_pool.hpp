#pragma once
// Host-side addresses of privileged VMs and the ports they publish, leased in one host-wide book.
//
// The book is RUN_DIR/leases.json (default /run/fcvm: every data directory of the host shares
// one bridge and one nftables table, so the book is per host, not per data directory; and it is
// on tmpfs, gone at reboot like the namespaces and rules it describes). It is only changed under
// an exclusive flock of RUN_DIR/lock, which also serialises every change to the host's fcvm
// table, so concurrent `fcvm run`s never pick one address or publish one port twice. A lease
// names the VM's namespace holder process: once that is gone the lease is stale, and whoever
// takes the lock next may clean up after it (its rules) and reuse its address.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fcvm/net/publish.hpp"
#include "fcvm/sys/process_identity.hpp"
#include "fcvm/util/result.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::net {

std::optional<uint32_t> parse_ipv4(std::string_view text);  // host byte order
std::string format_ipv4(uint32_t address);

// "172.31.0.1/16": the bridge's own address and its subnet.
struct Ipv4Subnet {
  uint32_t network = 0;
  int prefix = 0;
  uint32_t own = 0;  // the bridge's address (never leased)
  uint32_t broadcast() const;
  std::string own_text() const { return format_ipv4(own); }
};
Result<Ipv4Subnet> parse_cidr(std::string_view text);

struct Lease {
  std::string address;  // the VM's host-side address
  std::string vm_id;
  sys::ProcessIdentity holder;  // the VM's namespace holder; the lease is stale once it is gone
  std::vector<PortMapping> ports{};
  std::string veth{};  // the host end of the VM's veth
};

// The lowest address of the subnet that is not its network or broadcast address, the bridge's,
// or leased: an address comes back into use as soon as its VM is gone.
Result<std::string> pick_address(const Ipv4Subnet& subnet, const std::vector<Lease>& leases);
// kInvalidInput when a wanted host port (protocol, port, overlapping address) is published by a
// leased VM.
Result<> check_ports_unclaimed(const std::vector<PortMapping>& wanted,
                               const std::vector<Lease>& leases);

std::string leases_to_json(const std::vector<Lease>& leases);
Result<std::vector<Lease>> leases_from_json(std::string_view text);

// The book, locked. Holding the object holds the lock; save() writes it atomically.
class LeaseBook {
 public:
  static Result<LeaseBook> lock(const std::string& run_dir);
  std::vector<Lease>& leases() { return m_leases; }
  Result<> save() const;

 private:
  UniqueFd m_lock;
  std::string m_dir;
  std::vector<Lease> m_leases;
};

// The leases as last saved, read without the lock (renames keep the file whole); none when there
// is no book or it is not readable for us.
std::vector<Lease> read_leases(const std::string& run_dir);

}  // namespace fcvm::net
