#include "fcvm/vm/options.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <regex>

#include "fcvm/agent_proto/signals.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::vm {

Result<> validate_name(const std::string& name) {
  static const std::regex re("[a-zA-Z0-9][a-zA-Z0-9_.-]*");
  if (name.empty() || name.size() > 63 || !std::regex_match(name, re)) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid name \"{}\": use 1-63 characters [a-zA-Z0-9_.-], starting "
                            "with a letter or digit",
                            name));
  }
  return {};
}

std::vector<PublishedPort> published_ports(const std::string& ports_column) {
  std::vector<PublishedPort> out;
  for (auto text : split(ports_column, ',')) {
    auto m = net::parse_publish(text);
    if (!m) continue;  // written by fcvm itself: never expected
    out.push_back(
        {m->guest_port, std::string(net::proto_name(m->proto)), m->host_ip, m->host_port});
  }
  return out;
}

Result<std::string> normalize_env(
    const std::string& entry,
    const std::function<std::optional<std::string>(const std::string&)>& lookup) {
  static const std::regex key_re("[A-Za-z_][A-Za-z0-9_]*");
  auto eq = entry.find('=');
  auto key = entry.substr(0, eq);
  if (!std::regex_match(key, key_re)) {
    return fail(
        ErrorCode::kInvalidInput,
        fmt::format("invalid --env \"{}\": the name must match [A-Za-z_][A-Za-z0-9_]*", entry));
  }
  if (eq != std::string::npos) return entry;
  auto v = lookup ? lookup(key) : std::nullopt;
  if (!v) {
    return fail(
        ErrorCode::kInvalidInput,
        fmt::format("invalid --env \"{}\": no value given and {} is not set here", entry, key));
  }
  return key + "=" + *v;
}

Result<std::vector<std::string>> read_env_file(
    const std::string& path,
    const std::function<std::optional<std::string>(const std::string&)>& lookup) {
  auto text = read_file(path);
  if (!text) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("cannot read --env-file \"{}\": {}", path, text.error().to_string()));
  }
  std::vector<std::string> out;
  int line_no = 0;
  for (auto line : split(*text, '\n')) {
    ++line_no;
    auto t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    auto env = normalize_env(std::string(t), lookup);
    if (!env) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("{}:{}: {}", path, line_no, env.error().message()));
    }
    out.push_back(*env);
  }
  return out;
}

Result<> validate_registry(const std::string& host_port) {
  static const std::regex re("[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?(:[0-9]{1,5})?");
  if (!std::regex_match(host_port, re)) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid --insecure-registry \"{}\": expected HOST[:PORT]", host_port));
  }
  return {};
}

std::string_view to_string(NetworkMode mode) {
  return mode == NetworkMode::kPrivileged ? "privileged" : "rootless";
}

Result<NetworkMode> parse_network_mode(std::string_view text, std::string_view what) {
  if (text == "rootless") return NetworkMode::kRootless;
  if (text == "privileged") return NetworkMode::kPrivileged;
  return fail(ErrorCode::kInvalidInput,
              fmt::format("invalid {} \"{}\": expected rootless or privileged", what, text));
}

std::string vmm_choice_name(VmmChoice choice) {
  return choice ? std::string(vmm::backend_traits(*choice).name) : "auto";
}

Result<VmmChoice> parse_vmm_choice(std::string_view text, std::string_view what) {
  if (text == "auto") return VmmChoice{};
  for (const auto& b : vmm::registered_backends()) {
    if (b.name == text) return VmmChoice{b.kind};
  }
  std::string known = "auto";
  for (const auto& b : vmm::registered_backends()) known += fmt::format(", {}", b.name);
  return fail(ErrorCode::kInvalidInput,
              fmt::format("invalid {} \"{}\": expected one of {}", what, text, known));
}

Result<agent_proto::Ulimit> parse_ulimit(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return fail(ErrorCode::kInvalidInput, fmt::format("invalid --ulimit \"{}\": {}", text, why));
  };
  auto eq = text.find('=');
  if (eq == std::string::npos) return bad("use NAME=SOFT[:HARD], e.g. nofile=1024:4096");
  agent_proto::Ulimit u;
  u.name = text.substr(0, eq);
  if (!agent_proto::is_ulimit_name(u.name)) {
    return bad("unknown resource (nofile, nproc, core, memlock, stack, cpu, fsize, ...)");
  }
  std::string values = text.substr(eq + 1);
  auto colon = values.find(':');
  auto number = [](std::string_view v) -> std::optional<int64_t> {
    auto n = parse_int(v, -1, INT64_MAX);
    if (!n) return std::nullopt;
    return *n;
  };
  auto soft = number(std::string_view(values).substr(0, colon));
  auto hard =
      colon == std::string::npos ? soft : number(std::string_view(values).substr(colon + 1));
  if (!soft || !hard) return bad("limits are numbers (-1: unlimited)");
  u.soft = *soft;
  u.hard = *hard;
  auto rank = [](int64_t v) { return v < 0 ? INT64_MAX : v; };
  if (rank(u.soft) > rank(u.hard)) return bad("the soft limit is above the hard one");
  return u;
}

std::string ulimit_text(const agent_proto::Ulimit& u) {
  return fmt::format("{}={}:{}", u.name, u.soft, u.hard);
}

Result<int64_t> parse_ttl_seconds(const std::string& text, const std::string& what) {
  auto n = parse_int(text, 0, 10LL * 366 * 86400);
  if (!n) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid {} \"{}\": expected seconds (0: none)", what, text));
  }
  return *n;
}

std::string options_to_json(const RunOptions& o) {
  std::vector<std::string> ports;
  for (const auto& p : o.ports) ports.push_back(p.to_string());
  std::vector<std::string> maps;
  for (const auto& m : o.volumes) maps.push_back(m.to_string());
  std::vector<std::string> ulimits;
  for (const auto& u : o.ulimits) ulimits.push_back(ulimit_text(u));
  nlohmann::json j = {{"name", o.name},
                      {"maps", maps},
                      {"map_size_mib", o.map_size_mib},
                      {"image", o.image.original},
                      {"command", o.command},
                      {"entrypoint", o.entrypoint},
                      {"env", o.env},
                      {"workdir", o.workdir},
                      {"user", o.user},
                      {"hostname", o.hostname},
                      {"read_only", o.read_only},
                      {"init", o.init},
                      {"ulimits", ulimits},
                      {"interactive", o.interactive},
                      {"tty", o.tty},
                      {"labels", o.labels},
                      {"ports", ports},
                      {"insecure_registries", o.insecure_registries},
                      {"mem_mib", o.mem_mib},
                      {"vcpus", o.vcpus},
                      {"vmm", vmm_choice_name(o.vmm)},
                      {"jailer", o.jailer},
                      {"network", to_string(o.network)},
                      {"wait_ready", o.wait_ready},
                      {"keep_on_failure", o.keep_on_failure},
                      {"stop_timeout_s", o.stop_timeout_s},
                      {"boot_timeout_s", o.boot_timeout_s},
                      {"ttl_s", o.ttl_s},
                      {"restart", to_string(o.restart)},
                      {"save_snapshot", o.save_snapshot},
                      {"snapshot_then_stop", o.snapshot_then_stop},
                      {"guest_pull", o.guest_pull}};
  if (!o.image_id.empty()) {
    j["stored_image"] = {
        {"id", o.image_id}, {"disk", o.image_disk}, {"config", o.image_config_json}};
  }
  return j.dump();
}

Result<RunOptions> options_from_json(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return fail(ErrorCode::kInternal, "the VM's stored options are not valid JSON");
  }
  try {
    RunOptions o;
    o.name = j.value("name", "");
    o.guest_pull = j.value("guest_pull", false);
    if (j.contains("stored_image")) {
      const auto& s = j.at("stored_image");
      o.image_id = s.at("id").get<std::string>();
      o.image_disk = s.at("disk").get<std::string>();
      o.image_config_json = s.at("config").get<std::string>();
    }
    auto image_text = j.at("image").get<std::string>();
    auto image = storage::parse_image_ref(image_text);
    if (!image && !o.image_id.empty()) {
      // A stored image no longer needs the archive it was imported from.
      image = storage::ImageRef{};
      image->original = image_text;
      image->source = image_text.rfind("docker-archive:", 0) == 0
                          ? storage::ImageSource::kDockerArchive
                          : storage::ImageSource::kOciArchive;
    }
    if (!image) return tl::unexpected<Error>(image.error());
    o.image = *image;
    o.command = j.value("command", std::vector<std::string>{});
    o.entrypoint = j.value("entrypoint", std::vector<std::string>{});
    o.env = j.value("env", std::vector<std::string>{});
    o.workdir = j.value("workdir", "");
    o.user = j.value("user", "");
    o.hostname = j.value("hostname", "");
    o.read_only = j.value("read_only", false);
    o.init = j.value("init", false);
    for (const auto& spelled : j.value("ulimits", std::vector<std::string>{})) {
      FCVM_TRY_ASSIGN(auto u, parse_ulimit(spelled));
      o.ulimits.push_back(std::move(u));
    }
    o.interactive = j.value("interactive", false);
    o.tty = j.value("tty", false);
    o.labels = j.value("labels", std::map<std::string, std::string>{});
    for (const auto& p : j.value("ports", std::vector<std::string>{})) {
      auto m = net::parse_publish(p);
      if (!m) return tl::unexpected<Error>(m.error());
      o.ports.push_back(*m);
    }
    o.insecure_registries = j.value("insecure_registries", std::vector<std::string>{});
    for (const auto& map : j.value("maps", std::vector<std::string>{})) {
      auto m = storage::parse_volume_map(map);  // the host path may have gone since
      if (!m) return tl::unexpected<Error>(m.error());
      o.volumes.push_back(*m);
    }
    o.map_size_mib = j.value("map_size_mib", int64_t{0});
    o.mem_mib = j.value("mem_mib", 1024);
    o.vcpus = j.value("vcpus", 2);
    auto vmm = parse_vmm_choice(j.value("vmm", "auto"), "the VM's stored vmm");
    if (!vmm) return fail(ErrorCode::kInternal, vmm.error().message());
    o.vmm = *vmm;
    o.jailer = j.value("jailer", "auto");
    auto network = parse_network_mode(j.value("network", "rootless"), "the VM's stored network");
    if (!network) return fail(ErrorCode::kInternal, network.error().message());
    o.network = *network;
    o.wait_ready = j.value("wait_ready", "");
    o.keep_on_failure = j.value("keep_on_failure", false);
    o.save_snapshot = j.value("save_snapshot", "");
    o.snapshot_then_stop = j.value("snapshot_then_stop", false);
    o.stop_timeout_s = j.value("stop_timeout_s", 10);
    o.boot_timeout_s = j.value("boot_timeout_s", 180);
    o.ttl_s = j.value("ttl_s", int64_t{0});
    auto restart = parse_restart_policy(j.value("restart", "no"));
    if (!restart) return fail(ErrorCode::kInternal, restart.error().message());
    o.restart = *restart;
    return o;
  } catch (const nlohmann::json::exception& e) {
    return fail(ErrorCode::kInternal, fmt::format("the VM's stored options: {}", e.what()));
  }
}

// Declared in lifecycle.hpp and snapshot.hpp; here with the other value checks (the fuzzed ones).
bool is_signal_name(const std::string& name) {
  return agent_proto::signal_number(name).has_value();
}

Result<> validate_snapshot_name(const std::string& name) {
  if (auto r = validate_name(name); !r) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid snapshot name \"{}\": use 1-63 characters [a-zA-Z0-9_.-], "
                            "starting with a letter or digit",
                            name));
  }
  return {};
}

}  // namespace fcvm::vm
