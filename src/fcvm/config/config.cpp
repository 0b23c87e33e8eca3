#include "fcvm/config/config.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <regex>
#include <set>

#include "fcvm/util/fs.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::config {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

// Reads one document. yaml-cpp reports through exceptions; they end here (our code never
// throws). Each error names the file, the line, the key (dotted path) and the value.
class Reader {
 public:
  explicit Reader(std::string origin) : m_origin(std::move(origin)) {}

  tl::unexpected<Error> bad(const YAML::Node& node, const std::string& key,
                            const std::string& expected) const {
    return fail(ErrorCode::kInvalidInput, fmt::format("{}: {}: invalid value {}: expected {}",
                                                      where(node), key, describe(node), expected));
  }
  tl::unexpected<Error> unknown(const YAML::Node& key_node, const YAML::Node& value,
                                const std::string& key, const std::string& known) const {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("{}: unknown key \"{}\" (value {}); known keys: {}", where(key_node),
                            key, describe(value), known));
  }
  std::string where(const YAML::Node& node) const {
    auto mark = node.Mark();
    if (mark.is_null()) return "config " + m_origin;
    return fmt::format("config {}:{}", m_origin, mark.line + 1);
  }
  const std::string& origin() const { return m_origin; }

  static std::string describe(const YAML::Node& node) {
    if (!node || node.IsNull()) return "(empty)";
    if (node.IsScalar()) return fmt::format("\"{}\"", node.Scalar());
    return node.IsSequence() ? "(a list)" : "(a mapping)";
  }

 private:
  std::string m_origin;
};

using Handler = std::function<Result<>(const YAML::Node& value, const std::string& key)>;

// Walks a mapping: every key must be known and appear once.
Result<> walk(const Reader& r, const YAML::Node& map, const std::string& prefix,
              const std::map<std::string, Handler>& handlers) {
  std::string known;
  for (const auto& [name, handler] : handlers) known += (known.empty() ? "" : ", ") + name;
  std::set<std::string> seen;
  for (const auto& entry : map) {
    if (!entry.first.IsScalar()) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("{}: {}keys must be plain names", r.where(entry.first), prefix));
    }
    auto name = entry.first.Scalar();
    auto key = prefix + name;
    auto handler = handlers.find(name);
    if (handler == handlers.end()) return r.unknown(entry.first, entry.second, key, known);
    if (!seen.insert(name).second) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("{}: key \"{}\" appears twice", r.where(entry.first), key));
    }
    FCVM_TRY(handler->second(entry.second, key));
  }
  return {};
}

Handler one_of(const Reader& r, std::string& out, std::vector<std::string> allowed) {
  return [&r, &out, allowed](const YAML::Node& v, const std::string& key) -> Result<> {
    for (const auto& a : allowed) {
      if (v.IsScalar() && v.Scalar() == a) {
        out = a;
        return {};
      }
    }
    return r.bad(v, key, "one of " + join(allowed, ", "));
  };
}

Handler integer(const Reader& r, int& out, int min, int max, std::string unit) {
  return [&r, &out, min, max, unit](const YAML::Node& v, const std::string& key) -> Result<> {
    auto n = v.IsScalar() ? parse_int(v.Scalar(), min, max) : std::nullopt;
    if (!n) return r.bad(v, key, fmt::format("{} as a whole number from {} to {}", unit, min, max));
    out = static_cast<int>(*n);
    return {};
  };
}

// An absolute path; "~/" at the start stands for $HOME.
Handler path(const Reader& r, std::string& out) {
  return [&r, &out](const YAML::Node& v, const std::string& key) -> Result<> {
    std::string p = v.IsScalar() ? v.Scalar() : "";
    if (p.rfind("~/", 0) == 0 && !env("HOME").empty()) p = env("HOME") + p.substr(1);
    if (p.empty() || p[0] != '/') return r.bad(v, key, "an absolute path (or ~/...)");
    out = p;
    return {};
  };
}

// Same rule as --insecure-registry: HOST[:PORT].
Handler registries(const Reader& r, std::vector<std::string>& out) {
  return [&r, &out](const YAML::Node& v, const std::string& key) -> Result<> {
    if (v.IsNull()) return {};
    if (!v.IsSequence()) return r.bad(v, key, "a list of HOST[:PORT]");
    static const std::regex re("[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?(:[0-9]{1,5})?");
    for (const auto& item : v) {
      if (!item.IsScalar() || !std::regex_match(item.Scalar(), re)) {
        return r.bad(item, key, "HOST[:PORT], e.g. 127.0.0.1:5000");
      }
      out.push_back(item.Scalar());
    }
    return {};
  };
}

Result<Config> read_document(const Reader& r, const YAML::Node& root) {
  Config c;
  c.source = r.origin();
  if (!root || root.IsNull()) return c;  // an empty file: the defaults
  if (!root.IsMap()) return r.bad(root, "(top level)", "a mapping of keys (key: value)");
  auto defaults = [&r, &c](const YAML::Node& v, const std::string& key) -> Result<> {
    if (v.IsNull()) return {};
    if (!v.IsMap())
      return r.bad(v, key, "a mapping with mem_mib, vcpus, stop_timeout_s, boot_timeout_s");
    return walk(r, v, key + ".",
                {{"mem_mib", integer(r, c.defaults.mem_mib, k_min_mem_mib, k_max_mem_mib, "MiB")},
                 {"vcpus", integer(r, c.defaults.vcpus, 1, k_max_vcpus, "vCPUs")},
                 {"stop_timeout_s",
                  integer(r, c.defaults.stop_timeout_s, 0, k_max_stop_timeout_s, "seconds")},
                 {"boot_timeout_s", integer(r, c.defaults.boot_timeout_s, k_min_boot_timeout_s,
                                            k_max_boot_timeout_s, "seconds")}});
  };
  FCVM_TRY(walk(r, root, "",
                {{"vmm", one_of(r, c.vmm, {"auto", "qemu", "firecracker"})},
                 {"jailer", one_of(r, c.jailer, {"auto", "on", "off"})},
                 {"network", one_of(r, c.network, {"rootless", "privileged"})},
                 {"defaults", defaults},
                 {"insecure_registries", registries(r, c.insecure_registries)},
                 {"data_dir", path(r, c.data_dir)},
                 {"guest_dir", path(r, c.guest_dir)}}));
  return c;
}

}  // namespace

Locations default_locations() {
  Locations where;
  where.explicit_file = env("FCVM_CONFIG");
  if (auto xdg = env("XDG_CONFIG_HOME"); !xdg.empty()) {
    where.user_file = xdg + "/fcvm/config.yml";
  } else if (auto home = env("HOME"); !home.empty()) {
    where.user_file = home + "/.config/fcvm/config.yml";
  }
  return where;
}

Result<std::string> find_config_file(const Locations& where) {
  if (!where.explicit_file.empty()) {
    if (!path_exists(where.explicit_file)) {
      return fail(
          ErrorCode::kInvalidInput,
          fmt::format("config file {} (from FCVM_CONFIG) does not exist", where.explicit_file));
    }
    return where.explicit_file;
  }
  for (const auto* f : {&where.user_file, &where.system_file}) {
    if (!f->empty() && path_exists(*f)) return *f;
  }
  return std::string();
}

Result<Config> parse(const std::string& yaml_text, const std::string& origin) {
  Reader r(origin);
  try {
    return read_document(r, YAML::Load(yaml_text));
  } catch (const YAML::Exception& e) {
    auto line = e.mark.is_null() ? std::string() : fmt::format(":{}", e.mark.line + 1);
    return fail(ErrorCode::kInvalidInput, fmt::format("config {}{}: {}", origin, line, e.msg));
  }
}

Result<Config> load_file(const std::string& path) {
  auto text = read_file(path);
  if (!text) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("config {}: cannot read: {}", path, text.error().to_string()));
  }
  return parse(*text, path);
}

Result<Config> load(const Locations& where) {
  auto file = find_config_file(where);
  if (!file) return tl::unexpected<Error>(file.error());
  if (file->empty()) return Config{};
  return load_file(*file);
}

Result<Config> load() { return load(default_locations()); }

}  // namespace fcvm::config
