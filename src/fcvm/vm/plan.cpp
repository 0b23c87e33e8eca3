#include "fcvm/vm/plan.hpp"

#include <chrono>

#include "fcvm/image/oci.hpp"

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
  if (!options.image_id.empty()) return false;  // the host fetched it
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
  plan.hostname = options.hostname.empty() ? name : options.hostname;
  plan.image.ref = options.image.guest_ref();
  if (!options.image_id.empty()) {
    // A stored image: its disk, and the config podman cannot read from a root filesystem. The
    // config was checked when the image was stored.
    plan.image.rootfs_serial = k_image_serial;
    plan.image.rootfs_fstype = "ext4";
    if (auto c = image::parse_image_config(options.image_config_json)) {
      plan.image.config = {c->entrypoint, c->cmd, c->env, c->workdir, c->user, c->stop_signal};
    }
  } else if (options.image.source != storage::ImageSource::kRegistry) {
    plan.image.archive_serial = k_image_serial;
    plan.image.archive_format = std::string(storage::ImageRef::source_name(options.image.source));
  }
  std::vector<std::string> loopback_registries;
  if (options.image_id.empty() && options.image.registry_on_loopback()) {
    loopback_registries.push_back(options.image.domain);
  }
  for (const auto& r :
       options.image_id.empty() ? options.insecure_registries : std::vector<std::string>{}) {
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
  plan.user = options.user;
  plan.read_only = options.read_only;
  plan.init = options.init;
  plan.ulimits = options.ulimits;
  plan.stdin_open = options.interactive;
  plan.tty = options.tty;
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
