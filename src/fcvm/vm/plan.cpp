#include "fcvm/vm/plan.hpp"

#include <chrono>

namespace fcvm::vm {
namespace {
bool on_loopback(const std::string& host_port) {
  auto host = host_port.substr(0, host_port.find(':'));
  return host == "localhost" || host.rfind("127.", 0) == 0;
}
std::string port_of(const std::string& host_port) {
  auto colon = host_port.find(':');
  return colon == std::string::npos ? std::string() : host_port.substr(colon);
}
}  // namespace

bool needs_host_loopback(const RunOptions& options) {
  if (options.image.registry_on_loopback()) return true;
  for (const auto& r : options.insecure_registries) {
    if (on_loopback(r)) return true;
  }
  return false;
}

agent_proto::Plan make_plan(const RunOptions& options, const std::string& id,
                            const std::string& name, const net::GuestNetwork& guest) {
  agent_proto::Plan plan;
  plan.vm_id = id;
  plan.name = name;
  plan.hostname = name;
  plan.image.ref = options.image.guest_ref();
  if (options.image.source != storage::ImageSource::kRegistry) {
    plan.image.archive_serial = k_image_serial;
    plan.image.archive_format = std::string(storage::ImageRef::source_name(options.image.source));
  }
  std::vector<std::string> loopback_registries;
  if (options.image.registry_on_loopback()) loopback_registries.push_back(options.image.domain);
  for (const auto& r : options.insecure_registries) {
    if (on_loopback(r)) {
      loopback_registries.push_back(r);
    } else {
      plan.image.insecure_registries.push_back(r);
    }
  }
  for (const auto& r : loopback_registries) {
    bool dup = false;
    for (const auto& m : plan.image.mirrors) dup = dup || m.prefix == r;
    // A registry on the host's loopback speaks plain HTTP unless proven otherwise (as Docker
    // treats 127.0.0.0/8); it is reached at the gateway address.
    if (!dup) plan.image.mirrors.push_back({r, guest.gateway + port_of(r), true});
  }
  plan.command = options.command;
  plan.entrypoint = options.entrypoint;
  plan.env = options.env;
  plan.workdir = options.workdir;
  plan.network.address = guest.address;
  plan.network.gateway = guest.gateway;
  plan.network.dns = guest.dns;
  plan.network.mtu = guest.mtu;
  plan.time_unix_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  plan.stop_timeout_s = options.stop_timeout_s;
  return plan;
}

}  // namespace fcvm::vm
