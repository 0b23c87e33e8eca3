#include "fcvm/vm/options.hpp"

#include <cstdlib>
#include <regex>

#include <fmt/format.h>

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

Result<std::string> normalize_env(const std::string& entry) {
  static const std::regex key_re("[A-Za-z_][A-Za-z0-9_]*");
  auto eq = entry.find('=');
  auto key = entry.substr(0, eq);
  if (!std::regex_match(key, key_re)) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid --env \"{}\": the name must match [A-Za-z_][A-Za-z0-9_]*", entry));
  }
  if (eq != std::string::npos) return entry;
  const char* v = std::getenv(key.c_str());
  if (v == nullptr) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid --env \"{}\": no value given and {} is not set here", entry, key));
  }
  return key + "=" + v;
}

Result<std::vector<std::string>> read_env_file(const std::string& path) {
  auto text = read_file(path);
  if (!text) {
    return fail(ErrorCode::kInvalidInput, fmt::format("cannot read --env-file \"{}\": {}", path,
                                                      text.error().to_string()));
  }
  std::vector<std::string> out;
  int line_no = 0;
  for (auto line : split(*text, '\n')) {
    ++line_no;
    auto t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    auto env = normalize_env(std::string(t));
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

}  // namespace fcvm::vm
