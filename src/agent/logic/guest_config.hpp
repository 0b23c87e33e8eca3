#pragma once
// Pure functions that turn a Plan into the guest's configuration: the `ip` commands of the network
// stage and the files the agent writes (/etc/resolv.conf, /etc/hosts, the registries drop-in).
// No I/O here, so that tests can check the exact output.
#include <string>
#include <string_view>
#include <vector>

#include "fcvm/agent_proto/messages.hpp"

namespace fcvm::agent {

inline constexpr const char* k_registries_conf = "/etc/containers/registries.conf.d/50-fcvm.conf";

// The `ip` invocations (argv without the program) that bring up lo and the plan's interface with
// its address and default route. `replace` instead of `add` keeps a re-run harmless. Without an
// address only the links are brought up.
std::vector<std::vector<std::string>> ip_commands(const agent_proto::NetworkSpec& net);

// "10.0.2.15/24" -> "10.0.2.15" (also for IPv6); the input when it has no prefix length.
std::string_view address_without_prefix(std::string_view cidr);

// containers-registries.conf(5) v2 drop-in: one [[registry]] per mirror (prefix -> location) and
// per insecure registry. An insecure registry that is also a mirror's prefix is folded into that
// mirror (two entries with one prefix would make podman refuse the configuration). Empty string
// when there is nothing to configure.
std::string render_registries_conf(const agent_proto::ImageSpec& image);

std::string render_resolv_conf(const std::vector<std::string>& dns);
std::string render_hosts(std::string_view hostname, std::string_view address_cidr);

// A TOML basic string with quotes and escapes.
std::string toml_quote(std::string_view s);

// Decodes hex ("0a1B..."); false on odd length or a non-hex digit.
bool decode_hex(std::string_view hex, std::string& out);

}  // namespace fcvm::agent
