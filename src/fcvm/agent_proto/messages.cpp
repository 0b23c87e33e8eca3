#include "fcvm/agent_proto/messages.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "fcvm/util/strings.hpp"

namespace fcvm::agent_proto {

using nlohmann::json;

namespace {
// Never throws: strings that are not valid UTF-8 (a helper's stderr, container output quoted in
// an error) are encoded with U+FFFD instead of making dump() throw.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// A terminal dimension (rows or cols): an integer in 0..65535, never silently truncated (json's
// get<uint16_t> would wrap). Absent: fallback, or an error when fallback is nullopt.
Result<uint16_t> dimension(const json& j, const char* key, std::optional<uint16_t> fallback) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (fallback) return *fallback;
    return fail(ErrorCode::kProtocol, fmt::format("missing '{}'", key));
  }
  if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > UINT16_MAX) {
    return fail(ErrorCode::kProtocol, fmt::format("'{}' must be an integer in 0..65535", key));
  }
  return static_cast<uint16_t>(it->get<int64_t>());
}

// An integer of type T: a json type_error (as get<> throws for a string) when the value is not
// an integer or lies outside T's range. json's own get<T>/value() would convert a float with
// undefined behaviour past T's range (1e21 as int64_t) and wrap a too-large integer.
template <class T>
T integer(const json& v, const char* key) {
  constexpr auto lo = std::numeric_limits<T>::min();
  constexpr auto hi = std::numeric_limits<T>::max();
  bool ok = false;
  T out{};
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    ok = u <= static_cast<uint64_t>(hi);
    out = static_cast<T>(u);
  } else if (v.is_number_integer()) {
    auto i = v.get<int64_t>();
    ok = i >= static_cast<int64_t>(lo) &&
         (i < 0 || static_cast<uint64_t>(i) <= static_cast<uint64_t>(hi));
    out = static_cast<T>(i);
  }
  if (!ok) {
    throw json::type_error::create(
        302, fmt::format("'{}' must be an integer in {}..{}", key, lo, hi), nullptr);
  }
  return out;
}
template <class T>
T integer_at(const json& j, const char* key) {
  return integer<T>(j.at(key), key);
}
template <class T>
T integer_or(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  return it == j.end() ? fallback : integer<T>(*it, key);
}
}  // namespace

bool is_ulimit_name(std::string_view name) {
  static constexpr std::string_view names[] = {
      "as",   "core",   "cpu",   "data", "fsize",  "locks",  "memlock",    "msgqueue",
      "nice", "nofile", "nproc", "rss",  "rtprio", "rttime", "sigpending", "stack"};
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

nlohmann::json to_json(const Plan& p) {
  json mirrors = json::array();
  for (const auto& m : p.image.mirrors) {
    mirrors.push_back({{"prefix", m.prefix}, {"location", m.location}, {"insecure", m.insecure}});
  }
  json image = {{"ref", p.image.ref},
                {"insecure_registries", p.image.insecure_registries},
                {"mirrors", mirrors}};
  if (!p.image.archive_serial.empty()) {
    image["archive"] = {{"serial", p.image.archive_serial}, {"format", p.image.archive_format}};
    if (p.image.archive_size > 0) image["archive"]["size"] = p.image.archive_size;
  }
  if (!p.image.rootfs_serial.empty()) {
    const auto& c = p.image.config;
    image["rootfs"] = {{"serial", p.image.rootfs_serial},
                       {"fstype", p.image.rootfs_fstype},
                       {"entrypoint", c.entrypoint},
                       {"cmd", c.cmd},
                       {"env", c.env},
                       {"workdir", c.workdir},
                       {"user", c.user},
                       {"stop_signal", c.stop_signal}};
  }
  json out = {{"version", p.version},
              {"vm_id", p.vm_id},
              {"name", p.name},
              {"hostname", p.hostname},
              {"image", image},
              {"command", p.command},
              {"entrypoint", p.entrypoint},
              {"env", p.env},
              {"workdir", p.workdir},
              {"network",
               {{"interface", p.network.interface},
                {"address", p.network.address},
                {"gateway", p.network.gateway},
                {"dns", p.network.dns},
                {"mtu", p.network.mtu}}},
              {"time_unix_ns", p.time_unix_ns},
              {"stop_timeout_s", p.stop_timeout_s}};
  if (!p.rng_seed_hex.empty()) out["rng_seed"] = p.rng_seed_hex;
  if (!p.user.empty()) out["user"] = p.user;
  if (p.read_only) out["read_only"] = true;
  if (p.init) out["init"] = true;
  if (p.stdin_open) out["stdin"] = true;
  if (p.tty) {
    out["tty"] = true;
    out["rows"] = p.rows;
    out["cols"] = p.cols;
  }
  if (!p.ulimits.empty()) {
    json ulimits = json::array();
    for (const auto& u : p.ulimits) {
      ulimits.push_back({{"name", u.name}, {"soft", u.soft}, {"hard", u.hard}});
    }
    out["ulimits"] = ulimits;
  }
  if (!p.volumes.empty()) {
    json volumes = json::array();
    for (const auto& v : p.volumes) {
      json vol = {{"guest_path", v.guest_path},
                  {"mode", v.mode},
                  {"serial", v.serial},
                  {"read_only", v.read_only}};
      if (!v.source.empty()) vol["source"] = v.source;
      if (!v.options.empty()) vol["options"] = v.options;
      volumes.push_back(vol);
    }
    out["volumes"] = volumes;
  }
  return out;
}

Result<Plan> plan_from_json(const json& j) {
  try {
    Plan p;
    p.version = integer_at<uint32_t>(j, "version");
    p.vm_id = j.at("vm_id").get<std::string>();
    p.name = j.value("name", "");
    p.hostname = j.value("hostname", "");
    const auto& image = j.at("image");
    p.image.ref = image.at("ref").get<std::string>();
    p.image.insecure_registries = image.value("insecure_registries", std::vector<std::string>{});
    if (image.contains("mirrors")) {
      for (const auto& m : image.at("mirrors")) {
        p.image.mirrors.push_back({m.at("prefix").get<std::string>(),
                                   m.at("location").get<std::string>(),
                                   m.value("insecure", false)});
      }
    }
    if (image.contains("archive")) {
      p.image.archive_serial = image.at("archive").at("serial").get<std::string>();
      p.image.archive_format = image.at("archive").value("format", "oci-archive");
      p.image.archive_size = integer_or<int64_t>(image.at("archive"), "size", 0);
    }
    if (image.contains("rootfs")) {
      const auto& r = image.at("rootfs");
      auto& c = p.image.config;
      p.image.rootfs_serial = r.at("serial").get<std::string>();
      p.image.rootfs_fstype = r.value("fstype", "ext4");
      c.entrypoint = r.value("entrypoint", std::vector<std::string>{});
      c.cmd = r.value("cmd", std::vector<std::string>{});
      c.env = r.value("env", std::vector<std::string>{});
      c.workdir = r.value("workdir", "");
      c.user = r.value("user", "");
      c.stop_signal = r.value("stop_signal", "");
    }
    p.command = j.value("command", std::vector<std::string>{});
    p.entrypoint = j.value("entrypoint", std::vector<std::string>{});
    p.env = j.value("env", std::vector<std::string>{});
    p.workdir = j.value("workdir", "");
    if (j.contains("network")) {
      const auto& n = j.at("network");
      p.network.interface = n.value("interface", "eth0");
      p.network.address = n.value("address", "");
      p.network.gateway = n.value("gateway", "");
      p.network.dns = n.value("dns", std::vector<std::string>{});
      p.network.mtu = integer_or<int>(n, "mtu", 1500);
    }
    p.time_unix_ns = integer_or<int64_t>(j, "time_unix_ns", 0);
    p.stop_timeout_s = integer_or<int>(j, "stop_timeout_s", 10);
    p.rng_seed_hex = j.value("rng_seed", "");
    p.user = j.value("user", "");
    p.read_only = j.value("read_only", false);
    p.init = j.value("init", false);
    p.stdin_open = j.value("stdin", false);
    p.tty = j.value("tty", false);
    p.rows = integer_or<uint16_t>(j, "rows", 0);
    p.cols = integer_or<uint16_t>(j, "cols", 0);
    if (j.contains("ulimits")) {
      for (const auto& u : j.at("ulimits")) {
        Ulimit limit{u.at("name").get<std::string>(), integer_at<int64_t>(u, "soft"),
                     integer_at<int64_t>(u, "hard")};
        if (!is_ulimit_name(limit.name) || limit.soft < -1 || limit.hard < -1) {
          return fail(ErrorCode::kProtocol,
                      fmt::format("bad plan: ulimit {} {}:{}", limit.name, limit.soft, limit.hard));
        }
        p.ulimits.push_back(std::move(limit));
      }
    }
    if (j.contains("volumes")) {
      for (const auto& v : j.at("volumes")) {
        VolumeSpec vol;
        vol.guest_path = v.at("guest_path").get<std::string>();
        vol.mode = v.value("mode", "block");
        vol.serial = v.value("serial", "");
        vol.read_only = v.value("read_only", false);
        vol.source = v.value("source", "");
        vol.options = v.value("options", "");
        if (vol.guest_path.empty() || vol.guest_path[0] != '/') {
          return fail(ErrorCode::kProtocol,
                      fmt::format("volume guest path '{}' is not absolute", vol.guest_path));
        }
        p.volumes.push_back(vol);
      }
    }
    return p;
  } catch (const json::exception& e) {
    return fail(ErrorCode::kProtocol, fmt::format("bad plan: {}", e.what()));
  }
}

std::string encode_hello(const Hello& h) {
  json j = {
      {"type", k_hello}, {"version", h.version}, {"agent", h.agent}, {"uptime_ms", h.uptime_ms}};
  if (!h.state.empty()) j["state"] = h.state;
  return dump(j);
}

Result<Hello> hello_from_json(const json& j) {
  try {
    Hello h;
    h.version = integer_at<uint32_t>(j, "version");
    h.agent = j.value("agent", "");
    h.uptime_ms = integer_or<int64_t>(j, "uptime_ms", 0);
    h.state = j.value("state", "");
    return h;
  } catch (const json::exception& e) {
    return fail(ErrorCode::kProtocol, fmt::format("bad hello: {}", e.what()));
  }
}
std::string encode_plan(const Plan& p) {
  return dump(json{{"type", k_plan}, {"plan", to_json(p)}});
}
std::string encode_event(const Event& e) {
  return dump(
      json{{"type", k_event}, {"name", e.name}, {"uptime_ms", e.uptime_ms}, {"detail", e.detail}});
}
std::string encode_ready() { return dump(json{{"type", k_ready}}); }
std::string encode_exit(const Exit& e) {
  return dump(json{{"type", k_exit}, {"stream", e.stream}, {"code", e.code}});
}
std::string encode_error(const ErrorMsg& e) {
  return dump(json{{"type", k_error}, {"stage", e.stage}, {"message", e.message}});
}
std::string encode_stop(const Stop& s) {
  return dump(json{{"type", k_stop}, {"timeout_s", s.timeout_s}});
}
std::string encode_log(const std::string& message) {
  return dump(json{{"type", k_log}, {"message", message}});
}

std::string encode_exec(const Exec& e) {
  json j = {{"type", k_exec},       {"stream", e.stream}, {"argv", e.argv}, {"env", e.env},
            {"workdir", e.workdir}, {"user", e.user},     {"tty", e.tty},   {"in_vm", e.in_vm}};
  if (e.rows > 0) j["rows"] = e.rows;
  if (e.cols > 0) j["cols"] = e.cols;
  return dump(j);
}

Result<Exec> exec_from_json(const json& j) {
  try {
    Exec e;
    e.stream = integer_at<uint32_t>(j, "stream");
    e.argv = j.at("argv").get<std::vector<std::string>>();
    e.env = j.value("env", std::vector<std::string>{});
    e.workdir = j.value("workdir", "");
    e.user = j.value("user", "");
    e.tty = j.value("tty", false);
    e.in_vm = j.value("in_vm", false);
    auto rows = dimension(j, "rows", 0);
    auto cols = dimension(j, "cols", 0);
    if (!rows || !cols) {
      return fail(ErrorCode::kProtocol, "bad exec: " + (rows ? cols : rows).error().message());
    }
    e.rows = *rows;
    e.cols = *cols;
    if (e.stream == k_main_stream) {
      return fail(ErrorCode::kProtocol, "bad exec: stream 0 is the main container's");
    }
    if (e.argv.empty()) return fail(ErrorCode::kProtocol, "bad exec: empty argv");
    return e;
  } catch (const json::exception& e) {
    return fail(ErrorCode::kProtocol, fmt::format("bad exec: {}", e.what()));
  }
}

std::string encode_exec_error(const ExecError& e) {
  return dump(json{{"type", k_exec_error}, {"stream", e.stream}, {"message", e.message}});
}

Result<ExecError> exec_error_from_json(const json& j) {
  try {
    return ExecError{integer_at<uint32_t>(j, "stream"), j.value("message", "")};
  } catch (const json::exception& e) {
    return fail(ErrorCode::kProtocol, fmt::format("bad exec_error: {}", e.what()));
  }
}

std::string encode_resize(const Resize& r) {
  return dump(json{{"type", k_resize}, {"stream", r.stream}, {"rows", r.rows}, {"cols", r.cols}});
}

Result<Resize> resize_from_json(const json& j) {
  try {
    Resize r;
    r.stream = integer_at<uint32_t>(j, "stream");
    auto rows = dimension(j, "rows", std::nullopt);
    auto cols = dimension(j, "cols", std::nullopt);
    if (!rows || !cols) {
      return fail(ErrorCode::kProtocol, "bad resize: " + (rows ? cols : rows).error().message());
    }
    r.rows = *rows;
    r.cols = *cols;
    return r;
  } catch (const json::exception& e) {
    return fail(ErrorCode::kProtocol, fmt::format("bad resize: {}", e.what()));
  }
}

std::string encode_signal(const Signal& s) {
  json j = {{"type", k_signal}, {"stream", s.stream}, {"signal", s.signal}};
  if (auto number = parse_int(s.signal, 0, INT32_MAX)) j["signal"] = *number;
  return dump(j);
}

Result<Signal> signal_from_json(const json& j) {
  try {
    Signal s;
    s.stream = integer_at<uint32_t>(j, "stream");
    const auto& sig = j.at("signal");
    if (sig.is_number_unsigned()) {
      s.signal = std::to_string(integer<uint32_t>(sig, "signal"));
    } else {
      s.signal = sig.get<std::string>();
    }
    if (s.signal.empty()) return fail(ErrorCode::kProtocol, "bad signal: empty signal");
    return s;
  } catch (const json::exception& e) {
    return fail(ErrorCode::kProtocol, fmt::format("bad signal: {}", e.what()));
  }
}

Result<Exit> exit_from_json(const json& j) {
  try {
    Exit e;
    e.stream = integer_at<uint32_t>(j, "stream");
    e.code = integer_at<int>(j, "code");
    return e;
  } catch (const json::exception& e) {
    return fail(ErrorCode::kProtocol, fmt::format("bad exit: {}", e.what()));
  }
}

Result<Event> event_from_json(const json& j) {
  try {
    return Event{j.value("name", "event"), integer_or<int64_t>(j, "uptime_ms", 0),
                 j.value("detail", "")};
  } catch (const json::exception& e) {
    return fail(ErrorCode::kProtocol, fmt::format("bad event: {}", e.what()));
  }
}

Result<ErrorMsg> error_from_json(const json& j) {
  try {
    return ErrorMsg{j.value("stage", "?"), j.value("message", "?")};
  } catch (const json::exception& e) {
    return fail(ErrorCode::kProtocol, fmt::format("bad error: {}", e.what()));
  }
}

Result<std::string> log_from_json(const json& j) {
  try {
    return j.value("message", "");
  } catch (const json::exception& e) {
    return fail(ErrorCode::kProtocol, fmt::format("bad log: {}", e.what()));
  }
}

Result<json> parse_control(const std::string& payload) {
  json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return fail(ErrorCode::kProtocol,
                fmt::format("bad control message: {}", payload.substr(0, 200)));
  }
  return j;
}

}  // namespace fcvm::agent_proto
