#include "fcvm/readiness/gate.hpp"

#include <fmt/format.h>

#include "fcvm/util/strings.hpp"

namespace fcvm::readiness {
namespace {
tl::unexpected<Error> bad(std::string_view spec, std::string_view why) {
  return fail(ErrorCode::kInvalidInput, fmt::format("invalid --wait-ready \"{}\": {}", spec, why));
}
}  // namespace

std::string_view Gate::mode_name() const {
  switch (mode) {
    case Mode::kAgent:
      return "agent";
    case Mode::kHttp:
      return "http";
    case Mode::kLog:
      return "log";
    case Mode::kExec:
      return "exec";
  }
  return "?";
}

Result<HttpTarget> parse_http_url(std::string_view url) {
  constexpr std::string_view k_scheme = "http://";
  if (url.substr(0, k_scheme.size()) != k_scheme) {
    return fail(ErrorCode::kInvalidInput, fmt::format("url \"{}\" must start with http://", url));
  }
  auto rest = url.substr(k_scheme.size());
  auto slash = rest.find('/');
  auto hostport = rest.substr(0, slash);
  HttpTarget t;
  t.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  auto colon = hostport.rfind(':');
  t.host = std::string(hostport.substr(0, colon));
  if (colon != std::string_view::npos) {
    auto port = parse_int(hostport.substr(colon + 1), 1, 65535);
    if (!port) return fail(ErrorCode::kInvalidInput, fmt::format("url \"{}\": bad port", url));
    t.port = static_cast<int>(*port);
  }
  // The host goes into a shell word and a /dev/tcp path: keep it to host-name characters.
  if (t.host.empty() ||
      t.host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789.-") != std::string::npos) {
    return fail(ErrorCode::kInvalidInput, fmt::format("url \"{}\": bad host", url));
  }
  if (t.path.find_first_of(" \r\n'\"\\") != std::string::npos) {
    return fail(ErrorCode::kInvalidInput, fmt::format("url \"{}\": bad path", url));
  }
  return t;
}

Result<Gate> parse_gate(std::string_view spec) {
  Gate g;
  g.spec = std::string(spec);
  std::string mode;
  bool have_url = false;
  // cmd= and pattern= may contain commas: they take the rest of the spec.
  std::string_view rest = spec;
  while (!rest.empty()) {
    auto eq = rest.find('=');
    if (eq == std::string_view::npos)
      return bad(spec, fmt::format("\"{}\" is not key=value", rest));
    auto key = rest.substr(0, eq);
    std::string_view value;
    if (key == "cmd" || key == "pattern") {
      value = rest.substr(eq + 1);
      rest = {};
    } else {
      auto comma = rest.find(',', eq);
      value = rest.substr(
          eq + 1, comma == std::string_view::npos ? std::string_view::npos : comma - eq - 1);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
    if (key == "mode") {
      mode = std::string(value);
    } else if (key == "url") {
      auto t = parse_http_url(value);
      if (!t) return bad(spec, t.error().message());
      g.http = *t;
      have_url = true;
    } else if (key == "status") {
      auto s = parse_int(value, 100, 599);
      if (!s) return bad(spec, fmt::format("status \"{}\" is not an HTTP status", value));
      g.status = static_cast<int>(*s);
    } else if (key == "timeout") {
      auto t = parse_int(value, 1, 86400);
      if (!t) return bad(spec, fmt::format("timeout \"{}\" is not seconds (1-86400)", value));
      g.timeout_s = static_cast<int>(*t);
    } else if (key == "pattern") {
      try {
        std::regex check{std::string(value)};
      } catch (const std::regex_error& e) {
        return bad(spec, fmt::format("pattern \"{}\": {}", value, e.what()));
      }
      g.pattern = std::string(value);
    } else if (key == "cmd") {
      g.cmd = std::string(value);
    } else {
      return bad(spec, fmt::format("unknown key \"{}\"", key));
    }
  }
  if (mode == "agent" || mode == "vsock") {
    g.mode = Mode::kAgent;
  } else if (mode == "http") {
    g.mode = Mode::kHttp;
    if (!have_url) return bad(spec, "mode=http needs url=");
  } else if (mode == "log") {
    g.mode = Mode::kLog;
    if (g.pattern.empty()) return bad(spec, "mode=log needs pattern=");
  } else if (mode == "exec") {
    g.mode = Mode::kExec;
    if (g.cmd.empty()) return bad(spec, "mode=exec needs cmd=");
  } else {
    return bad(spec, fmt::format("mode \"{}\" is not agent, vsock, http, log or exec", mode));
  }
  return g;
}

std::vector<std::string> Gate::probe_argv() const {
  if (mode == Mode::kExec) return {"sh", "-c", cmd};
  if (mode != Mode::kHttp) return {};
  // bash's /dev/tcp: no HTTP client needs to exist in the guest. The status line decides.
  auto script = fmt::format(
      "exec 3<>/dev/tcp/{0}/{1} || exit 1; "
      "printf 'GET {2} HTTP/1.0\\r\\nHost: {0}\\r\\nConnection: close\\r\\n\\r\\n' >&3; "
      "read -r -t 5 proto code rest <&3 || exit 1; [ \"$code\" = {3} ]",
      http.host, http.port, http.path, status);
  return {"bash", "-c", script};
}

bool LogMatcher::feed(std::string_view bytes) {
  for (char c : bytes) {
    if (c == '\n') {
      bool hit = std::regex_search(m_line, m_re);
      m_line.clear();
      if (hit) return true;
    } else {
      m_line.push_back(c);
    }
  }
  return !m_line.empty() && std::regex_search(m_line, m_re);
}

}  // namespace fcvm::readiness
