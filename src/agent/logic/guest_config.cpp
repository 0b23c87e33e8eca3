#include "agent/logic/guest_config.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace fcvm::agent {

std::vector<std::vector<std::string>> ip_commands(const agent_proto::NetworkSpec& net) {
  std::vector<std::vector<std::string>> cmds;
  cmds.push_back({"link", "set", "lo", "up"});
  if (net.interface.empty()) return cmds;
  cmds.push_back({"link", "set", net.interface, "mtu", std::to_string(net.mtu), "up"});
  if (!net.address.empty()) {
    cmds.push_back({"addr", "replace", net.address, "dev", net.interface});
  }
  if (!net.gateway.empty()) {
    cmds.push_back({"route", "replace", "default", "via", net.gateway, "dev", net.interface});
  }
  return cmds;
}

std::string_view address_without_prefix(std::string_view cidr) {
  return cidr.substr(0, cidr.find('/'));
}

std::string toml_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          out += fmt::format("\\u{:04X}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string render_registries_conf(const agent_proto::ImageSpec& image) {
  std::string out;
  auto is_mirror_prefix = [&](const std::string& host) {
    return std::any_of(image.mirrors.begin(), image.mirrors.end(),
                       [&](const auto& m) { return m.prefix == host; });
  };
  auto is_insecure = [&](const std::string& host) {
    return std::find(image.insecure_registries.begin(), image.insecure_registries.end(), host) !=
           image.insecure_registries.end();
  };
  for (const auto& m : image.mirrors) {
    out += fmt::format("[[registry]]\nprefix = {}\nlocation = {}\ninsecure = {}\n\n",
                       toml_quote(m.prefix), toml_quote(m.location),
                       m.insecure || is_insecure(m.prefix) ? "true" : "false");
  }
  std::vector<std::string> done;
  for (const auto& host : image.insecure_registries) {
    if (host.empty() || is_mirror_prefix(host)) continue;
    if (std::find(done.begin(), done.end(), host) != done.end()) continue;
    done.push_back(host);
    out += fmt::format("[[registry]]\nlocation = {}\ninsecure = true\n\n", toml_quote(host));
  }
  if (out.empty()) return out;
  return "# Written by fc-agent from the VM's plan.\n\n" + out;
}

std::string render_resolv_conf(const std::vector<std::string>& dns) {
  std::string out = "# Written by fc-agent from the VM's plan.\n";
  for (const auto& server : dns) out += fmt::format("nameserver {}\n", server);
  return out;
}

std::string render_hosts(std::string_view hostname, std::string_view address_cidr) {
  std::string out =
      "127.0.0.1\tlocalhost\n"
      "::1\tlocalhost ip6-localhost ip6-loopback\n";
  if (!hostname.empty()) {
    auto ip = address_without_prefix(address_cidr);
    out += fmt::format("{}\t{}\n", ip.empty() ? "127.0.1.1" : ip, hostname);
  }
  return out;
}

bool decode_hex(std::string_view hex, std::string& out) {
  if (hex.size() % 2 != 0) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out.clear();
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

}  // namespace fcvm::agent
