#pragma once
// What the rest of fcvm sees of a VM's network, whichever mode built it: the namespace the VMM
// joins, the tap it opens there, the guest's configuration (identical in every mode, VM and
// clone: each VM has a namespace of its own), and a JSON description for the VM's record.
#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/util/result.hpp"

namespace fcvm::net {

// The user and group that own the VM's tap when the VMM runs as another user than fcvm (a jailed
// Firecracker without CAP_NET_ADMIN can attach only to a tap it owns).
struct TapOwner {
  uid_t uid = 0;
  gid_t gid = 0;
};
// " user U group G" for `ip tuntap add`, or "".
inline std::string tap_owner_args(const std::optional<TapOwner>& owner) {
  if (!owner) return {};
  return " user " + std::to_string(owner->uid) + " group " + std::to_string(owner->gid);
}

// The guest side of the network: identical in every VM and clone (each has its own namespace).
struct GuestNetwork {
  std::string address = "10.0.2.15/24";
  std::string ip = "10.0.2.15";
  std::string gateway = "10.0.2.2";
  std::vector<std::string> dns{"10.0.2.3"};
  std::string mac = "06:00:0a:00:02:0f";
  int mtu = 1500;
};

enum class NetworkMode { kRootless, kPrivileged };

// One VM's network. The object owns everything it created (processes, devices, host rules) and
// undoes it when destroyed, unless detach()ed: then a `kill -9`-proof record (describe()) is what
// cleans up later (see cleanup_privileged).
class VmNetwork {
 public:
  virtual ~VmNetwork() = default;
  // The process holding the VM's network namespace; the VMM joins its namespaces.
  virtual pid_t holder_pid() const = 0;
  // A helper process that must live as long as the VM (slirp4netns), 0 if none.
  virtual pid_t helper_pid() const = 0;
  virtual const std::string& tap() const = 0;
  virtual const GuestNetwork& guest() const = 0;
  // For the VM's record (`fcvm inspect` shows it; lifecycle hands it back to clean up).
  virtual nlohmann::json describe() const = 0;
  // Gives up ownership: nothing is undone on destruction.
  virtual void detach() = 0;
  // Completes what may run while the VMM starts (rootless: slirp4netns becoming ready, the port
  // forwards). Called once the VMM runs and before the guest is resumed (a restore) or needs the
  // network (a boot takes seconds). Default: nothing left.
  virtual Result<> finish() { return {}; }
};

}  // namespace fcvm::net
