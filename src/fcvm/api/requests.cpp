#include "fcvm/api/requests.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "fcvm/util/strings.hpp"
#include "fcvm/vm/lifecycle.hpp"
#include "fcvm/vm/snapshot.hpp"

namespace fcvm::api {
namespace {

using nlohmann::json;
using Field = std::function<Result<>(const json&)>;

Error bad(const std::string& key, const json& value, std::string_view expected) {
  auto shown = value.dump();
  if (shown.size() > 80) shown = shown.substr(0, 77) + "...";
  return Error(ErrorCode::kInvalidInput,
               fmt::format("invalid \"{}\": {}: expected {}", key, shown, expected));
}

Result<json> parse_object(std::string_view body, bool empty_is_object) {
  if (body.empty() && empty_is_object) return json::object();
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded()) {
    return fail(ErrorCode::kInvalidInput, "the request body is not valid JSON");
  }
  if (!j.is_object())
    return fail(ErrorCode::kInvalidInput, "the request body must be a JSON object");
  return j;
}

// Applies each member to its field; an unknown member is an error naming it.
Result<> apply(const json& obj, const std::map<std::string, Field>& fields) {
  for (const auto& [key, value] : obj.items()) {
    auto it = fields.find(key);
    if (it == fields.end()) {
      std::string known;
      for (const auto& [k, unused] : fields) known += (known.empty() ? "" : ", ") + k;
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("unknown field \"{}\" (known: {})", key, known));
    }
    if (value.is_null()) continue;  // null: not given
    FCVM_TRY(it->second(value));
  }
  return {};
}

Field text(const std::string& key, std::string& out) {
  return [&out, key](const json& v) -> Result<> {
    if (!v.is_string()) return tl::unexpected(bad(key, v, "a string"));
    out = v.get<std::string>();
    if (out.find('\0') != std::string::npos) return tl::unexpected(bad(key, v, "no NUL byte"));
    return {};
  };
}

Field flag(const std::string& key, bool& out) {
  return [&out, key](const json& v) -> Result<> {
    if (!v.is_boolean()) return tl::unexpected(bad(key, v, "true or false"));
    out = v.get<bool>();
    return {};
  };
}

// An integer given as a number (or its text): kept as text for the engine's validation.
Field number(const std::string& key, std::string& out) {
  return [&out, key](const json& v) -> Result<> {
    if (v.is_number_integer()) {
      out = std::to_string(v.get<int64_t>());
      return {};
    }
    if (v.is_string()) {
      out = v.get<std::string>();
      return {};
    }
    return tl::unexpected(bad(key, v, "an integer"));
  };
}

Field strings(const std::string& key, std::vector<std::string>& out) {
  return [&out, key](const json& v) -> Result<> {
    if (!v.is_array()) return tl::unexpected(bad(key, v, "an array of strings"));
    for (const auto& item : v) {
      if (!item.is_string()) return tl::unexpected(bad(key, v, "an array of strings"));
      auto s = item.get<std::string>();
      if (s.find('\0') != std::string::npos) return tl::unexpected(bad(key, v, "no NUL byte"));
      out.push_back(std::move(s));
    }
    return {};
  };
}

// K=V pairs as an object {"K": "V"} or an array ["K=V"].
Field pairs(const std::string& key, std::vector<std::string>& out) {
  return [&out, key](const json& v) -> Result<> {
    if (v.is_array()) return strings(key, out)(v);
    if (!v.is_object()) return tl::unexpected(bad(key, v, "an object of strings or an array"));
    for (const auto& [k, item] : v.items()) {
      if (!item.is_string()) return tl::unexpected(bad(key, v, "an object of strings"));
      out.push_back(k + "=" + item.get<std::string>());
    }
    return {};
  };
}

}  // namespace

Result<CreateVm> parse_create_vm(std::string_view body) {
  FCVM_TRY_ASSIGN(auto obj, parse_object(body, false));
  CreateVm c;
  auto& r = c.request;
  std::string image;
  std::vector<std::string> cmd;
  bool jailer = false, jailer_given = false;
  std::string ttl;
  FCVM_TRY(
      apply(obj, {
                     {"image", text("image", image)},
                     {"cmd", strings("cmd", cmd)},
                     {"name", text("name", r.name)},
                     {"entrypoint", text("entrypoint", r.entrypoint)},
                     {"workdir", text("workdir", r.workdir)},
                     {"user", text("user", r.user)},
                     {"hostname", text("hostname", r.hostname)},
                     {"env", pairs("env", r.env)},
                     {"env_files", strings("env_files", r.env_files)},
                     {"labels", pairs("labels", r.labels)},
                     {"publish", strings("publish", r.publish)},
                     {"mem", number("mem", r.mem)},
                     {"cpu", number("cpu", r.cpu)},
                     {"vmm", text("vmm", r.vmm)},
                     {"jailer",
                      [&](const json& v) -> Result<> {
                        jailer_given = true;
                        return flag("jailer", jailer)(v);
                      }},
                     {"network", text("network", r.network)},
                     {"restart", text("restart", r.restart)},
                     {"stop_timeout", number("stop_timeout", r.stop_timeout)},
                     {"boot_timeout", number("boot_timeout", r.boot_timeout)},
                     {"wait_ready", text("wait_ready", r.wait_ready)},
                     {"keep_on_failure", flag("keep_on_failure", r.keep_on_failure)},
                     {"map", strings("map", r.maps)},
                     {"map_size", text("map_size", r.map_size)},
                     {"save_snapshot", text("save_snapshot", r.save_snapshot)},
                     {"snapshot_then_stop", flag("snapshot_then_stop", r.snapshot_then_stop)},
                     {"read_only", flag("read_only", r.read_only)},
                     {"init", flag("init", r.init)},
                     {"ulimits", strings("ulimits", r.ulimits)},
                     {"interactive", flag("interactive", r.interactive)},
                     {"tty", flag("tty", r.tty)},
                     {"insecure_registries", strings("insecure_registries", r.insecure_registries)},
                     {"guest_pull", flag("guest_pull", r.guest_pull)},
                     {"authfile", text("authfile", r.authfile)},
                     {"ttl", number("ttl", r.ttl)},
                     {"rm", flag("rm", c.rm)},
                 }));
  if (image.empty()) return fail(ErrorCode::kInvalidInput, "missing \"image\"");
  r.image_and_command.push_back(image);
  r.image_and_command.insert(r.image_and_command.end(), cmd.begin(), cmd.end());
  if (jailer_given) r.jailer = jailer ? "on" : "off";
  r.detach = true;
  if (c.rm && !r.restart.empty() && r.restart != "no") {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("\"rm\" and \"restart\": \"{}\" conflict", r.restart));
  }
  return c;
}

Result<CloneVm> parse_clone_vm(std::string_view body) {
  FCVM_TRY_ASSIGN(auto obj, parse_object(body, true));
  CloneVm c;
  auto& r = c.request;
  FCVM_TRY(apply(obj, {
                          {"name", text("name", r.name)},
                          {"publish", strings("publish", r.publish)},
                          {"network", text("network", r.network)},
                          {"wait_ready", text("wait_ready", r.wait_ready)},
                          {"keep_on_failure", flag("keep_on_failure", r.keep_on_failure)},
                          {"labels", pairs("labels", r.labels)},
                          {"ttl", number("ttl", r.ttl)},
                          {"rm", flag("rm", c.rm)},
                      }));
  return c;
}

Result<ExecBody> parse_exec(std::string_view body) {
  FCVM_TRY_ASSIGN(auto obj, parse_object(body, false));
  ExecBody e;
  auto& r = e.request;
  std::string rows, cols;
  FCVM_TRY(apply(obj, {
                          {"cmd", strings("cmd", r.argv)},
                          {"env", pairs("env", r.env)},
                          {"workdir", text("workdir", r.workdir)},
                          {"user", text("user", r.user)},
                          {"tty", flag("tty", r.tty)},
                          {"stdin", flag("stdin", r.interactive)},
                          {"vm", flag("vm", r.in_vm)},
                          {"rows", number("rows", rows)},
                          {"cols", number("cols", cols)},
                      }));
  if (r.argv.empty()) return fail(ErrorCode::kInvalidInput, "missing \"cmd\" (a non-empty array)");
  for (const auto& kv : r.env) {
    if (kv.find('=') == std::string::npos || kv[0] == '=') {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("invalid \"env\" entry \"{}\": expected K=V", kv));
    }
  }
  if (!r.workdir.empty() && r.workdir[0] != '/') {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid \"workdir\" \"{}\": must be absolute", r.workdir));
  }
  if (!rows.empty() || !cols.empty()) {
    auto R = parse_int(rows, 1, 65535);
    auto C = parse_int(cols, 1, 65535);
    if (!R || !C) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("invalid \"rows\"/\"cols\" \"{}\"/\"{}\": expected 1..65535 each",
                              rows, cols));
    }
    e.size = vm::WindowSize{static_cast<uint16_t>(*R), static_cast<uint16_t>(*C)};
  }
  return e;
}

Result<std::string> parse_signal(std::string_view body, const std::string& fallback) {
  FCVM_TRY_ASSIGN(auto obj, parse_object(body, true));
  std::string signal;
  FCVM_TRY(apply(obj, {{"signal", text("signal", signal)}}));
  if (signal.empty()) signal = fallback;
  if (!vm::is_signal_name(signal)) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid \"signal\" \"{}\": expected a signal name or number (TERM, "
                            "SIGKILL, 9)",
                            signal));
  }
  return signal;
}

Result<vm::WindowSize> parse_resize(std::string_view body) {
  FCVM_TRY_ASSIGN(auto obj, parse_object(body, false));
  std::string rows, cols;
  FCVM_TRY(apply(obj, {{"rows", number("rows", rows)}, {"cols", number("cols", cols)}}));
  auto R = parse_int(rows, 1, 65535);
  auto C = parse_int(cols, 1, 65535);
  if (!R || !C) {
    return fail(
        ErrorCode::kInvalidInput,
        fmt::format("invalid \"rows\"/\"cols\" \"{}\"/\"{}\": expected 1..65535 each", rows, cols));
  }
  return vm::WindowSize{static_cast<uint16_t>(*R), static_cast<uint16_t>(*C)};
}

Result<std::string> parse_snapshot_create(std::string_view body) {
  FCVM_TRY_ASSIGN(auto obj, parse_object(body, false));
  std::string name;
  FCVM_TRY(apply(obj, {{"name", text("name", name)}}));
  if (name.empty()) return fail(ErrorCode::kInvalidInput, "missing \"name\"");
  FCVM_TRY(vm::validate_snapshot_name(name));
  return name;
}

Result<int64_t> parse_ttl(std::string_view body) {
  FCVM_TRY_ASSIGN(auto obj, parse_object(body, false));
  std::string seconds;
  FCVM_TRY(apply(obj, {{"seconds", number("seconds", seconds)}}));
  if (seconds.empty()) return fail(ErrorCode::kInvalidInput, "missing \"seconds\"");
  return vm::parse_ttl_seconds(seconds, "\"seconds\"");
}

Result<bool> query_bool(const std::string& name, const std::string& value, bool fallback) {
  if (value.empty()) return fallback;
  if (value == "1" || value == "true") return true;
  if (value == "0" || value == "false") return false;
  return fail(ErrorCode::kInvalidInput,
              fmt::format("invalid {}=\"{}\": expected 1, 0, true or false", name, value));
}

Result<int64_t> query_int(const std::string& name, const std::string& value, int64_t min,
                          int64_t max) {
  auto n = parse_int(value, min, max);
  if (!n) {
    return fail(
        ErrorCode::kInvalidInput,
        fmt::format("invalid {}=\"{}\": expected an integer from {} to {}", name, value, min, max));
  }
  return *n;
}

Result<ListenAddress> parse_listen(const std::string& text, bool allow_remote) {
  ListenAddress a;
  auto bad_value = [&](std::string_view why) {
    return fail(ErrorCode::kInvalidInput, fmt::format("invalid --listen \"{}\": {}", text, why));
  };
  if (text.rfind("unix:", 0) == 0 || text.rfind('/', 0) == 0) {
    a.path = text.rfind("unix:", 0) == 0 ? text.substr(5) : text;
    if (a.path.empty() || a.path[0] != '/') return bad_value("expected an absolute socket path");
    if (a.path.size() >= 108) return bad_value("a socket path has at most 107 bytes");
    return a;
  }
  auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    return bad_value("expected unix:PATH, /PATH or HOST:PORT (127.0.0.1:8765)");
  }
  auto host = text.substr(0, colon);
  auto port = parse_int(text.substr(colon + 1), 0, 65535);
  if (!port) return bad_value("the port must be 0..65535");
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  bool loopback = false;
  in_addr v4{};
  in6_addr v6{};
  if (host == "localhost") {
    host = "127.0.0.1";
    loopback = true;
  } else if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    loopback = (ntohl(v4.s_addr) >> 24) == 127;
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    loopback = IN6_IS_ADDR_LOOPBACK(&v6);
  } else {
    return bad_value("the host must be an IP address or localhost");
  }
  if (!loopback && !allow_remote) {
    return bad_value(
        "not a loopback address: anyone who reaches it can run VMs as this user with the token; "
        "add --allow-remote to mean it (and put a TLS proxy in front)");
  }
  a.tcp = true;
  a.host = host;
  a.port = static_cast<int>(*port);
  return a;
}

}  // namespace fcvm::api
