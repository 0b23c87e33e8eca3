#include "fcvm/vm/control_proto.hpp"

#include <fmt/format.h>

#include <array>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

namespace fcvm::vm::control {
namespace {

using nlohmann::json;

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

constexpr std::array<std::pair<ErrorCode, std::string_view>, 9> k_codes = {{
    {ErrorCode::kInternal, "internal"},
    {ErrorCode::kInvalidInput, "invalid_input"},
    {ErrorCode::kNotFound, "not_found"},
    {ErrorCode::kAlreadyExists, "already_exists"},
    {ErrorCode::kUnavailable, "unavailable"},
    {ErrorCode::kTimeout, "timeout"},
    {ErrorCode::kSystem, "system"},
    {ErrorCode::kProtocol, "protocol"},
    {ErrorCode::kCancelled, "cancelled"},
}};

tl::unexpected<Error> bad(std::string_view what) {
  return fail(ErrorCode::kProtocol, fmt::format("control message: {}", what));
}

// Typed member access: absent members take the default, present ones must have the right type.
class Reader {
 public:
  explicit Reader(const json& j) : m_j(j) {}
  Result<std::string> str(const char* key, std::string def = {}) const {
    auto it = m_j.find(key);
    if (it == m_j.end()) return def;
    if (!it->is_string()) return bad(fmt::format("\"{}\" is not a string", key));
    return it->get<std::string>();
  }
  Result<bool> flag(const char* key) const {
    auto it = m_j.find(key);
    if (it == m_j.end()) return false;
    if (!it->is_boolean()) return bad(fmt::format("\"{}\" is not a boolean", key));
    return it->get<bool>();
  }
  Result<std::optional<int64_t>> integer(const char* key, int64_t lo, int64_t hi) const {
    auto it = m_j.find(key);
    if (it == m_j.end() || it->is_null()) return std::optional<int64_t>{};
    if (!it->is_number_integer()) return bad(fmt::format("\"{}\" is not an integer", key));
    auto v = it->get<int64_t>();
    if (v < lo || v > hi) return bad(fmt::format("\"{}\" out of range: {}", key, v));
    return std::optional<int64_t>(v);
  }
  Result<std::vector<std::string>> strings(const char* key) const {
    auto it = m_j.find(key);
    if (it == m_j.end()) return std::vector<std::string>{};
    if (!it->is_array()) return bad(fmt::format("\"{}\" is not a list", key));
    std::vector<std::string> out;
    for (const auto& v : *it) {
      if (!v.is_string()) return bad(fmt::format("\"{}\" holds a non-string", key));
      out.push_back(v.get<std::string>());
    }
    return out;
  }

 private:
  const json& m_j;
};

Result<json> parse_object(std::string_view payload) {
  auto j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  auto type = j.find("type");
  if (type == j.end() || !type->is_string()) return bad("no \"type\"");
  return j;
}

Result<Exec> exec_from(const Reader& r) {
  Exec e;
  FCVM_TRY_ASSIGN(e.argv, r.strings("argv"));
  if (e.argv.empty()) return bad("exec: empty \"argv\"");
  FCVM_TRY_ASSIGN(e.env, r.strings("env"));
  FCVM_TRY_ASSIGN(e.workdir, r.str("workdir"));
  FCVM_TRY_ASSIGN(e.user, r.str("user"));
  FCVM_TRY_ASSIGN(e.tty, r.flag("tty"));
  FCVM_TRY_ASSIGN(e.in_vm, r.flag("in_vm"));
  FCVM_TRY_ASSIGN(e.stdin_open, r.flag("stdin"));
  FCVM_TRY_ASSIGN(auto rows, r.integer("rows", 0, 65535));
  FCVM_TRY_ASSIGN(auto cols, r.integer("cols", 0, 65535));
  e.rows = static_cast<uint16_t>(rows.value_or(0));
  e.cols = static_cast<uint16_t>(cols.value_or(0));
  return e;
}

}  // namespace

std::string_view error_code_name(ErrorCode code) {
  for (const auto& [c, name] : k_codes) {
    if (c == code) return name;
  }
  return "internal";
}

ErrorCode error_code_from_name(std::string_view name) {
  for (const auto& [c, n] : k_codes) {
    if (n == name) return c;
  }
  return ErrorCode::kInternal;
}

std::string_view type_name(const Request& r) {
  return std::visit(Overloaded{
                        [](const Attach&) { return std::string_view("attach"); },
                        [](const Stop&) { return std::string_view("stop"); },
                        [](const Kill&) { return std::string_view("kill"); },
                        [](const VolumeSync&) { return std::string_view("volume_sync"); },
                        [](const Snapshot&) { return std::string_view("snapshot"); },
                        [](const Exec&) { return std::string_view("exec"); },
                        [](const Resize&) { return std::string_view("resize"); },
                        [](const Signal&) { return std::string_view("signal"); },
                        [](const ContainerSignal&) { return std::string_view("container_signal"); },
                        [](const Rename&) { return std::string_view("rename"); },
                        [](const Pause&) { return std::string_view("pause"); },
                        [](const Unpause&) { return std::string_view("unpause"); },
                        [](const Subscribe&) { return std::string_view("subscribe"); },
                        [](const Detach&) { return std::string_view("detach"); },
                        [](const SetExpiry&) { return std::string_view("set_expiry"); },
                    },
                    r);
}

std::string_view type_name(const Message& m) {
  return std::visit(Overloaded{
                        [](const Ok&) { return std::string_view("ok"); },
                        [](const Failure&) { return std::string_view("error"); },
                        [](const Exited&) { return std::string_view("exit"); },
                        [](const Event&) { return std::string_view("event"); },
                    },
                    m);
}

std::string encode(const Request& r) {
  json j = {{"type", std::string(type_name(r))}};
  std::visit(Overloaded{
                 [&](const Attach& a) {
                   if (a.rows != 0 && a.cols != 0) {
                     j["rows"] = a.rows;
                     j["cols"] = a.cols;
                   }
                 },
                 [&](const Stop& s) {
                   if (s.timeout_s) j["timeout_s"] = *s.timeout_s;
                 },
                 [](const Kill&) {},
                 [](const VolumeSync&) {},
                 [&](const Snapshot& s) {
                   j["name"] = s.name;
                   j["then_stop"] = s.then_stop;
                 },
                 [&](const Exec& e) {
                   j["argv"] = e.argv;
                   j["env"] = e.env;
                   j["workdir"] = e.workdir;
                   j["user"] = e.user;
                   j["tty"] = e.tty;
                   j["in_vm"] = e.in_vm;
                   j["stdin"] = e.stdin_open;
                   if (e.rows != 0 && e.cols != 0) {
                     j["rows"] = e.rows;
                     j["cols"] = e.cols;
                   }
                 },
                 [&](const Resize& s) {
                   j["rows"] = s.rows;
                   j["cols"] = s.cols;
                 },
                 [&](const Signal& s) { j["signal"] = s.signal; },
                 [&](const ContainerSignal& s) { j["signal"] = s.signal; },
                 [&](const Rename& s) { j["name"] = s.name; },
                 [](const Pause&) {},
                 [](const Unpause&) {},
                 [](const Subscribe&) {},
                 [](const Detach&) {},
                 [&](const SetExpiry& s) { j["expires_ms"] = s.expires_ms; },
             },
             r);
  return j.dump();
}

std::string encode(const Message& m) {
  json j = {{"type", std::string(type_name(m))}};
  std::visit(Overloaded{
                 [&](const Ok& ok) {
                   if (!ok.id.empty()) j["id"] = ok.id;
                   if (!ok.name.empty()) j["name"] = ok.name;
                   if (ok.count) j["count"] = *ok.count;
                 },
                 [&](const Failure& f) {
                   j["code"] = std::string(error_code_name(f.error.code()));
                   j["message"] = f.error.message();
                   if (f.error.sys_errno() != 0) j["errno"] = f.error.sys_errno();
                 },
                 [&](const Exited& e) { j["code"] = e.code; },
                 [&](const Event& e) { j["event"] = to_json(e); },
             },
             m);
  return j.dump();
}

Result<Request> decode_request(std::string_view payload) {
  FCVM_TRY_ASSIGN(auto j, parse_object(payload));
  Reader r(j);
  auto type = j["type"].get<std::string>();
  if (type == "attach") {
    FCVM_TRY_ASSIGN(auto rows, r.integer("rows", 1, 65535));
    FCVM_TRY_ASSIGN(auto cols, r.integer("cols", 1, 65535));
    Attach a;
    if (rows && cols) {
      a.rows = static_cast<uint16_t>(*rows);
      a.cols = static_cast<uint16_t>(*cols);
    }
    return a;
  }
  if (type == "kill") return Kill{};
  if (type == "volume_sync") return VolumeSync{};
  if (type == "subscribe") return Subscribe{};
  if (type == "pause") return Pause{};
  if (type == "unpause") return Unpause{};
  if (type == "detach") return Detach{};
  if (type == "stop") {
    FCVM_TRY_ASSIGN(auto t, r.integer("timeout_s", 0, 3600));
    Stop s;
    if (t) s.timeout_s = static_cast<int>(*t);
    return s;
  }
  if (type == "snapshot") {
    Snapshot s;
    FCVM_TRY_ASSIGN(s.name, r.str("name"));
    FCVM_TRY_ASSIGN(s.then_stop, r.flag("then_stop"));
    return s;
  }
  if (type == "exec") {
    FCVM_TRY_ASSIGN(auto e, exec_from(r));
    return e;
  }
  if (type == "resize") {
    FCVM_TRY_ASSIGN(auto rows, r.integer("rows", 1, 65535));
    FCVM_TRY_ASSIGN(auto cols, r.integer("cols", 1, 65535));
    if (!rows || !cols) return bad("resize: needs rows and cols");
    return Resize{static_cast<uint16_t>(*rows), static_cast<uint16_t>(*cols)};
  }
  if (type == "set_expiry") {
    FCVM_TRY_ASSIGN(auto at, r.integer("expires_ms", 0, INT64_MAX));
    if (!at) return bad("set_expiry: needs \"expires_ms\"");
    return SetExpiry{*at};
  }
  if (type == "rename") {
    FCVM_TRY_ASSIGN(auto name, r.str("name"));
    if (name.empty()) return bad("rename: empty \"name\"");
    return Rename{name};
  }
  if (type == "signal" || type == "container_signal") {
    FCVM_TRY_ASSIGN(auto sig, r.str("signal"));
    if (sig.empty()) return bad(fmt::format("{}: empty \"signal\"", type));
    if (type == "signal") return Signal{sig};
    return ContainerSignal{sig};
  }
  return bad(fmt::format("unknown request \"{}\"", type));
}

Result<Message> decode_message(std::string_view payload) {
  FCVM_TRY_ASSIGN(auto j, parse_object(payload));
  Reader r(j);
  auto type = j["type"].get<std::string>();
  if (type == "ok") {
    Ok ok;
    FCVM_TRY_ASSIGN(ok.id, r.str("id"));
    FCVM_TRY_ASSIGN(ok.name, r.str("name"));
    FCVM_TRY_ASSIGN(ok.count, r.integer("count", 0, std::numeric_limits<int64_t>::max()));
    return ok;
  }
  if (type == "error") {
    FCVM_TRY_ASSIGN(auto code, r.str("code", "internal"));
    FCVM_TRY_ASSIGN(auto message, r.str("message", "?"));
    FCVM_TRY_ASSIGN(auto err, r.integer("errno", 0, 4095));
    return Failure{Error(error_code_from_name(code), message, static_cast<int>(err.value_or(0)))};
  }
  if (type == "exit") {
    FCVM_TRY_ASSIGN(auto code, r.integer("code", -1, 255));
    if (!code) return bad("exit: no \"code\"");
    return Exited{static_cast<int>(*code)};
  }
  if (type == "event") {
    auto it = j.find("event");
    if (it == j.end()) return bad("event: no \"event\"");
    FCVM_TRY_ASSIGN(auto e, event_from_json(*it));
    return e;
  }
  return bad(fmt::format("unknown message \"{}\"", type));
}

}  // namespace fcvm::vm::control
