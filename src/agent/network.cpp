// The first stages of a plan, run synchronously (each takes milliseconds): the system (clock,
// hostname, entropy) and the network (ip link/addr/route, resolv.conf, hosts).
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.hpp"
#include "agent/console.hpp"
#include "agent/logic/guest_config.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fcvm::agent {
namespace {
constexpr auto k_ip_timeout = std::chrono::seconds(20);

Result<> write_config_file(const std::string& path, const std::string& contents) {
  auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) FCVM_TRY(make_dirs(path.substr(0, slash)));
  return write_file_atomic(path, contents, 0644);
}
}  // namespace

void Agent::start_plan() {
  const auto& plan = *m_plan;
  m_phase = Phase::kPreparing;
  sayf("plan for vm {} ({}): image {}", plan.vm_id, plan.name,
       plan.image.archive_serial.empty() ? plan.image.ref
                                         : "archive on disk " + plan.image.archive_serial);
  if (auto r = apply_system(plan, true); !r) {
    fail_plan("system", r.error().to_string());
    return;
  }
  if (auto r = configure_network(); !r) {
    fail_plan("network", r.error().to_string());
    return;
  }
  send_event("network_ready", plan.network.address);
  start_image();
}

Result<> Agent::apply_system(const agent_proto::Plan& plan, bool first_time) {
  if (!m_options.system_changes) return {};
  if (plan.time_unix_ns > 0) {
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(plan.time_unix_ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(plan.time_unix_ns % 1'000'000'000);
    if (clock_settime(CLOCK_REALTIME, &ts) != 0) return fail_errno("set the clock");
  }
  if (!plan.rng_seed_hex.empty()) {
    std::string seed;
    if (!decode_hex(plan.rng_seed_hex, seed)) {
      return fail(ErrorCode::kProtocol, "rng_seed is not a hex string");
    }
    // Writing to /dev/urandom mixes the bytes into the pool without crediting entropy: enough to
    // make clones of one snapshot diverge, and harmless when the seed is known.
    UniqueFd fd(::open("/dev/urandom", O_WRONLY | O_CLOEXEC));
    if (!fd || !write_all(fd.get(), seed)) return fail_errno("write /dev/urandom");
  }
  if (first_time && !plan.hostname.empty()) {
    if (::sethostname(plan.hostname.data(), plan.hostname.size()) != 0) {
      return fail_errno(fmt::format("set hostname {}", plan.hostname));
    }
  }
  return {};
}

void Agent::adopt_identity(const agent_proto::Plan& plan) {
  sayf("now VM {} ({}), was {}", plan.name, plan.vm_id, m_plan->vm_id);
  m_plan->vm_id = plan.vm_id;
  m_plan->name = plan.name;
  m_plan->stop_timeout_s = plan.stop_timeout_s;
  // The guest's address and MAC are the same in every clone, but the gateway side is a new
  // device: forget the link-layer addresses learnt in the old VM's network.
  if (!m_options.system_changes) return;
  if (auto r = run_checked({"ip", "neigh", "flush", "all"}, k_ip_timeout); !r) {
    sayf("{}", r.error().to_string());
  }
}

Result<> Agent::configure_network() {
  const auto& net = m_plan->network;
  for (auto& args : ip_commands(net)) {
    std::vector<std::string> argv = {"ip"};
    argv.insert(argv.end(), args.begin(), args.end());
    sayf("run: {}", join(argv, " "));
    auto r = run_checked(argv, k_ip_timeout);
    if (!r) return tl::unexpected<Error>(r.error());
  }
  if (!m_plan->network.dns.empty()) {
    FCVM_TRY(write_config_file(path("/etc/resolv.conf"), render_resolv_conf(net.dns)));
  }
  FCVM_TRY(write_config_file(path("/etc/hosts"), render_hosts(m_plan->hostname, net.address)));
  return {};
}

}  // namespace fcvm::agent
