#include "fcvm/net/address_pool.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "fcvm/util/fs.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::net {

std::optional<uint32_t> parse_ipv4(std::string_view text) {
  in_addr addr{};
  if (::inet_pton(AF_INET, std::string(text).c_str(), &addr) != 1) return std::nullopt;
  return ntohl(addr.s_addr);
}

std::string format_ipv4(uint32_t address) {
  return fmt::format("{}.{}.{}.{}", address >> 24, (address >> 16) & 0xff, (address >> 8) & 0xff,
                     address & 0xff);
}

uint32_t Ipv4Subnet::broadcast() const {
  uint32_t host_mask = prefix >= 32 ? 0 : (0xffffffffu >> prefix);
  return network | host_mask;
}

Result<Ipv4Subnet> parse_cidr(std::string_view text) {
  auto bad = [&] {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid bridge address \"{}\": expected IPv4/PREFIX with a prefix of "
                            "8 to 30, e.g. 172.31.0.1/16",
                            text));
  };
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return bad();
  auto own = parse_ipv4(text.substr(0, slash));
  auto prefix = parse_int(text.substr(slash + 1), 8, 30);
  if (!own || !prefix) return bad();
  Ipv4Subnet s;
  s.prefix = static_cast<int>(*prefix);
  s.network = *own & ~(0xffffffffu >> s.prefix);
  s.own = *own;
  if (s.own == s.network || s.own == s.broadcast()) return bad();
  return s;
}

Result<std::string> pick_address(const Ipv4Subnet& subnet, const std::vector<Lease>& leases) {
  std::vector<uint32_t> taken;
  for (const auto& l : leases) {
    if (auto a = parse_ipv4(l.address)) taken.push_back(*a);
  }
  for (uint32_t a = subnet.network + 1; a < subnet.broadcast(); ++a) {
    if (a == subnet.own) continue;
    bool used = false;
    for (auto t : taken) used = used || t == a;
    if (!used) return format_ipv4(a);
  }
  return fail(ErrorCode::kUnavailable,
              fmt::format("no free address left in {}/{} ({} VMs hold one)",
                          format_ipv4(subnet.network), subnet.prefix, leases.size()));
}

Result<> check_ports_unclaimed(const std::vector<PortMapping>& wanted,
                               const std::vector<Lease>& leases) {
  for (const auto& w : wanted) {
    for (const auto& l : leases) {
      for (const auto& p : l.ports) {
        if (!host_ports_overlap(w, p)) continue;
        return fail(ErrorCode::kInvalidInput,
                    fmt::format("--publish {}: host port {}:{}/{} is already in use (published by "
                                "VM {})",
                                w.to_string(), w.host_ip, w.host_port, proto_name(w.proto),
                                l.vm_id.substr(0, 12)));
      }
    }
  }
  return {};
}

std::string leases_to_json(const std::vector<Lease>& leases) {
  auto arr = nlohmann::json::array();
  for (const auto& l : leases) {
    std::vector<std::string> ports;
    for (const auto& p : l.ports) ports.push_back(p.to_string());
    arr.push_back({{"address", l.address},
                   {"vm_id", l.vm_id},
                   {"holder",
                    {{"pid", l.holder.pid},
                     {"start_time", l.holder.start_time},
                     {"boot_id", l.holder.boot_id}}},
                   {"ports", ports},
                   {"veth", l.veth}});
  }
  return nlohmann::json{{"leases", arr}}.dump(2) + "\n";
}

Result<std::vector<Lease>> leases_from_json(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return fail(ErrorCode::kProtocol, "the lease book is not valid JSON");
  }
  std::vector<Lease> out;
  try {
    for (const auto& e : j.value("leases", nlohmann::json::array())) {
      Lease l;
      l.address = e.at("address").get<std::string>();
      l.vm_id = e.at("vm_id").get<std::string>();
      const auto& h = e.at("holder");
      l.holder.pid = h.at("pid").get<pid_t>();
      l.holder.start_time = h.at("start_time").get<unsigned long long>();
      l.holder.boot_id = h.at("boot_id").get<std::string>();
      for (const auto& p : e.value("ports", std::vector<std::string>{})) {
        auto m = parse_publish(p);
        if (!m) return tl::unexpected<Error>(m.error());
        l.ports.push_back(*m);
      }
      l.veth = e.value("veth", "");
      out.push_back(std::move(l));
    }
  } catch (const nlohmann::json::exception& e) {
    return fail(ErrorCode::kProtocol, fmt::format("the lease book: {}", e.what()));
  }
  return out;
}

Result<LeaseBook> LeaseBook::lock(const std::string& run_dir) {
  FCVM_TRY(make_dirs(run_dir, 0755));
  LeaseBook book;
  book.m_dir = run_dir;
  auto lock_path = run_dir + "/lock";
  book.m_lock.reset(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!book.m_lock) return fail_errno(fmt::format("open {}", lock_path));
  // Released when m_lock closes (the lock belongs to this open file description).
  while (::flock(book.m_lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return fail_errno(fmt::format("lock {}", lock_path));
  }
  auto path = run_dir + "/leases.json";
  if (path_exists(path)) {
    auto text = read_file(path);
    if (!text) return tl::unexpected<Error>(text.error());
    auto leases = leases_from_json(*text);
    if (!leases) return tl::unexpected<Error>(std::move(leases.error()).wrap(path));
    book.m_leases = std::move(*leases);
  }
  return book;
}

Result<> LeaseBook::save() const {
  return write_file_atomic(m_dir + "/leases.json", leases_to_json(m_leases), 0644);
}

std::vector<Lease> read_leases(const std::string& run_dir) {
  auto text = read_file(run_dir + "/leases.json");
  if (!text) return {};
  auto leases = leases_from_json(*text);
  return leases ? std::move(*leases) : std::vector<Lease>{};
}

}  // namespace fcvm::net
