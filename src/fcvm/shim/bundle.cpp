#include "fcvm/shim/bundle.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::shim {
namespace {

using nlohmann::json;

Error bad(const std::string& what) { return Error(ErrorCode::kInvalidInput, what); }

// A member of the expected type, or absent (nullopt); a member of another type is kInvalidInput.
Result<const json*> member(const json& j, const char* key, json::value_t type, const char* where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return static_cast<const json*>(nullptr);
  bool same = it->type() == type ||
              (type == json::value_t::number_unsigned && it->is_number_integer() && *it >= 0);
  if (!same) {
    return tl::unexpected(bad(fmt::format("{}.{}: expected {}, got {}", where, key,
                                          json(type).type_name(), it->type_name())));
  }
  return &*it;
}

Result<std::vector<std::string>> strings(const json& j, const char* key, const char* where) {
  FCVM_TRY_ASSIGN(auto* arr, member(j, key, json::value_t::array, where));
  std::vector<std::string> out;
  if (arr == nullptr) return out;
  for (const auto& v : *arr) {
    if (!v.is_string())
      return tl::unexpected(bad(fmt::format("{}.{}: expected strings", where, key)));
    out.push_back(v.get<std::string>());
  }
  return out;
}

Result<uint32_t> id_member(const json& j, const char* key, const char* where) {
  FCVM_TRY_ASSIGN(auto* v, member(j, key, json::value_t::number_unsigned, where));
  if (v == nullptr) return 0u;
  auto n = v->get<uint64_t>();
  if (n > UINT32_MAX)
    return tl::unexpected(bad(fmt::format("{}.{}: {} is out of range", where, key, n)));
  return static_cast<uint32_t>(n);
}

Result<ProcessSpec> process_from(const json& p, const char* where) {
  if (!p.is_object()) return tl::unexpected(bad(fmt::format("{}: expected an object", where)));
  ProcessSpec out;
  FCVM_TRY_ASSIGN(out.args, strings(p, "args", where));
  if (out.args.empty() || out.args[0].empty()) {
    return tl::unexpected(bad(fmt::format("{}.args: a process needs a command", where)));
  }
  FCVM_TRY_ASSIGN(out.env, strings(p, "env", where));
  for (const auto& e : out.env) {
    if (e.find('=') == std::string::npos || e.front() == '=') {
      return tl::unexpected(bad(fmt::format("{}.env: \"{}\" is not NAME=VALUE", where, e)));
    }
  }
  FCVM_TRY_ASSIGN(auto* cwd, member(p, "cwd", json::value_t::string, where));
  if (cwd != nullptr) out.cwd = cwd->get<std::string>();
  if (out.cwd.empty() || out.cwd.front() != '/') {
    return tl::unexpected(
        bad(fmt::format("{}.cwd: \"{}\" is not an absolute path", where, out.cwd)));
  }
  FCVM_TRY_ASSIGN(auto* terminal, member(p, "terminal", json::value_t::boolean, where));
  if (terminal != nullptr) out.terminal = terminal->get<bool>();
  FCVM_TRY_ASSIGN(auto* user, member(p, "user", json::value_t::object, where));
  if (user != nullptr) {
    FCVM_TRY_ASSIGN(out.uid, id_member(*user, "uid", "process.user"));
    FCVM_TRY_ASSIGN(out.gid, id_member(*user, "gid", "process.user"));
    FCVM_TRY_ASSIGN(auto* name, member(*user, "username", json::value_t::string, "process.user"));
    if (name != nullptr && !name->get<std::string>().empty()) {
      return tl::unexpected(bad("process.user.username: Windows user names are not supported"));
    }
  }
  return out;
}

// Kernel file systems every container gets in the VM anyway, and the name files the VM provides
// itself (containerd and CRI bind-mount host copies of them).
bool provided_in_vm(const std::string& type, const std::string& destination) {
  static const std::set<std::string> kernel = {"proc",   "sysfs",  "tmpfs",  "devpts",
                                               "mqueue", "cgroup", "cgroup2"};
  static const std::set<std::string> name_files = {
      "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev/shm", "/dev/termination-log"};
  if (kernel.count(type) != 0) return true;
  return name_files.count(destination) != 0;
}

}  // namespace

Result<ProcessSpec> parse_process_spec(const std::string& process_json) {
  auto j = json::parse(process_json, nullptr, false);
  if (j.is_discarded()) return tl::unexpected(bad("the exec's process spec is not JSON"));
  return process_from(j, "process");
}

Result<ContainerSpec> parse_container_spec(const std::string& config_json) {
  auto j = json::parse(config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return tl::unexpected(bad("config.json is not a JSON object"));
  }
  ContainerSpec out;
  FCVM_TRY_ASSIGN(auto* process, member(j, "process", json::value_t::object, "spec"));
  if (process == nullptr) return tl::unexpected(bad("config.json: no process"));
  FCVM_TRY_ASSIGN(out.process, process_from(*process, "process"));
  FCVM_TRY_ASSIGN(auto* rlimits, member(*process, "rlimits", json::value_t::array, "process"));
  if (rlimits != nullptr) {
    for (const auto& r : *rlimits) {
      if (!r.is_object()) return tl::unexpected(bad("process.rlimits: expected objects"));
      FCVM_TRY_ASSIGN(auto* type, member(r, "type", json::value_t::string, "process.rlimits[]"));
      std::string t = type != nullptr ? type->get<std::string>() : std::string();
      Rlimit limit;
      if (t.rfind("RLIMIT_", 0) == 0) {
        for (char c : t.substr(7)) {
          limit.name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
      }
      if (!agent_proto::is_ulimit_name(limit.name)) {
        return tl::unexpected(bad(fmt::format("process.rlimits: unknown type \"{}\"", t)));
      }
      for (auto [key, field] : {std::pair{"soft", &limit.soft}, std::pair{"hard", &limit.hard}}) {
        FCVM_TRY_ASSIGN(auto* v,
                        member(r, key, json::value_t::number_unsigned, "process.rlimits[]"));
        uint64_t n = v != nullptr ? v->get<uint64_t>() : 0;
        *field = n > static_cast<uint64_t>(INT64_MAX) ? -1 : static_cast<int64_t>(n);
      }
      out.rlimits.push_back(std::move(limit));
    }
  }
  FCVM_TRY_ASSIGN(auto* hostname, member(j, "hostname", json::value_t::string, "spec"));
  if (hostname != nullptr) out.hostname = hostname->get<std::string>();
  FCVM_TRY_ASSIGN(auto* root, member(j, "root", json::value_t::object, "spec"));
  if (root != nullptr) {
    FCVM_TRY_ASSIGN(auto* ro, member(*root, "readonly", json::value_t::boolean, "root"));
    if (ro != nullptr) out.readonly_root = ro->get<bool>();
  }
  FCVM_TRY_ASSIGN(auto* mounts, member(j, "mounts", json::value_t::array, "spec"));
  if (mounts != nullptr) {
    for (const auto& m : *mounts) {
      if (!m.is_object()) return tl::unexpected(bad("mounts: expected objects"));
      FCVM_TRY_ASSIGN(auto* dest, member(m, "destination", json::value_t::string, "mounts[]"));
      FCVM_TRY_ASSIGN(auto* type, member(m, "type", json::value_t::string, "mounts[]"));
      FCVM_TRY_ASSIGN(auto* source, member(m, "source", json::value_t::string, "mounts[]"));
      std::string d = dest != nullptr ? dest->get<std::string>() : std::string();
      std::string t = type != nullptr ? type->get<std::string>() : std::string("bind");
      if (provided_in_vm(t, d)) continue;
      return tl::unexpected(bad(fmt::format(
          "mount {} on {} (type {}): the container runs in a VM, which cannot see host paths",
          source != nullptr ? source->get<std::string>() : std::string("?"), d, t)));
    }
  }
  FCVM_TRY_ASSIGN(auto* annotations, member(j, "annotations", json::value_t::object, "spec"));
  if (annotations != nullptr) {
    for (const auto& [k, v] : annotations->items()) {
      if (!v.is_string()) {
        return tl::unexpected(bad(fmt::format("annotations.{}: expected a string", k)));
      }
      out.annotations[k] = v.get<std::string>();
    }
  }
  if (auto it = out.annotations.find(k_annotation_mem); it != out.annotations.end()) {
    auto mib = parse_int(it->second, 128, 1 << 20);
    if (!mib) {
      return tl::unexpected(
          bad(fmt::format("annotation {}: \"{}\" is not a size in MiB (128-1048576)",
                          k_annotation_mem, it->second)));
    }
    out.mem_mib = static_cast<int>(*mib);
  }
  if (auto it = out.annotations.find(k_annotation_cpu); it != out.annotations.end()) {
    auto cpus = parse_int(it->second, 1, 32);
    if (!cpus) {
      return tl::unexpected(bad(fmt::format("annotation {}: \"{}\" is not a vCPU count (1-32)",
                                            k_annotation_cpu, it->second)));
    }
    out.vcpus = static_cast<int>(*cpus);
  }
  return out;
}

Result<RootfsLayers> rootfs_layers(const std::vector<MountSpec>& mounts) {
  if (mounts.empty()) {
    return tl::unexpected(
        bad("no rootfs mount: fcvm needs the snapshotter's mounts (overlayfs or native)"));
  }
  if (mounts.size() != 1) {
    return tl::unexpected(bad(fmt::format("{} rootfs mounts: fcvm takes one", mounts.size())));
  }
  const auto& m = mounts[0];
  RootfsLayers layers;
  auto& out = layers.lower;
  if (m.type == "bind" || m.type == "rbind") {
    if (m.source.empty() || m.source.front() != '/') {
      return tl::unexpected(
          bad(fmt::format("rootfs bind mount: \"{}\" is not an absolute path", m.source)));
    }
    out.push_back(m.source);
    return layers;
  }
  if (m.type != "overlay") {
    return tl::unexpected(
        bad(fmt::format("rootfs mount type \"{}\": fcvm reads overlay and bind", m.type)));
  }
  auto& upper = layers.upper;
  for (const auto& o : m.options) {
    if (o.rfind("lowerdir=", 0) == 0) {
      std::string list = o.substr(9);  // split() returns views into it
      for (auto l : split(list, ':')) out.emplace_back(l);
    } else if (o.rfind("upperdir=", 0) == 0) {
      upper = o.substr(9);
    }
  }
  if (out.empty()) return tl::unexpected(bad("rootfs overlay mount without lowerdir"));
  for (const auto& l : out) {
    if (l.empty() || l.front() != '/') {
      return tl::unexpected(
          bad(fmt::format("rootfs overlay: lower dir \"{}\" is not an absolute path", l)));
    }
  }
  if (!upper.empty() && upper.front() != '/') {
    return tl::unexpected(
        bad(fmt::format("rootfs overlay: upper dir \"{}\" is not an absolute path", upper)));
  }
  return layers;
}

Result<> check_runtime_options(const std::string& type_url) {
  if (type_url.empty()) return {};
  static const std::set<std::string> known = {
      "io.containerd.runtimeoptions.v1.Options",
      "type.googleapis.com/io.containerd.runtimeoptions.v1.Options",
      "containerd.runtimeoptions.v1.Options"};
  if (known.count(type_url) != 0) return {};
  return fail(ErrorCode::kInvalidInput,
              fmt::format("runtime options of type \"{}\": fcvm takes none, or "
                          "io.containerd.runtimeoptions.v1.Options",
                          type_url));
}

std::string vm_name_for(const std::string& ns, const std::string& id) {
  static const std::regex valid("[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}");
  auto name = ns + "-" + id;
  if (std::regex_match(name, valid)) return name;
  // FNV-1a: stable, short, enough to keep shortened names apart.
  uint64_t h = 1469598103934665603ull;
  for (char c : ns + "/" + id) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  std::string keep;
  for (char c : id) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-') keep += c;
  }
  if (keep.empty() || !std::isalnum(static_cast<unsigned char>(keep[0]))) keep = "ctr" + keep;
  return fmt::format("{}-{:016x}", keep.substr(0, 46), h);
}

}  // namespace fcvm::shim
