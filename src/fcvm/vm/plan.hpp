#pragma once
#include <string>

#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/net/rootless.hpp"
#include "fcvm/vm/options.hpp"

namespace fcvm::vm {

inline constexpr const char* k_root_serial = "fcvm-root";
inline constexpr const char* k_image_serial = "fcvm-image";

// The run plan handed to fc-agent. Registries on the host's loopback are reached from the guest
// through the network gateway: the plan carries a mirror entry so that the image keeps its name.
agent_proto::Plan make_plan(const RunOptions& options, const std::string& id,
                            const std::string& name, const net::GuestNetwork& guest);

// True when the guest must reach the host's loopback (a registry there).
bool needs_host_loopback(const RunOptions& options);

}  // namespace fcvm::vm
