#include "support/firecracker_spec.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <vector>

#include "fcvm/util/fs.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::testing {

using nlohmann::json;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

tl::unexpected<Error> violation(const std::string& where, const std::string& what) {
  return fail(ErrorCode::kInvalidInput, fmt::format("{}: {}", where, what));
}

std::string type_name(const json& v) {
  if (v.is_number_integer()) return "integer";
  return v.type_name();
}

// Validates value against schema; `where` is the JSON path for messages ("body.drives[0]").
class SchemaValidator {
 public:
  explicit SchemaValidator(const YAML::Node& root) : m_root(root) {}

  Result<> validate(const YAML::Node& schema_in, const json& value, const std::string& where,
                    int depth = 0) const {
    if (depth > 32) return violation(where, "schema nesting too deep");
    if (!schema_in["$ref"]) return validate_resolved(schema_in, value, where, depth);
    auto resolved = resolve(schema_in["$ref"].as<std::string>());
    if (!resolved) return tl::unexpected<Error>(resolved.error());
    return validate_resolved(*resolved, value, where, depth);
  }

 private:
  // Reads through const Nodes only: yaml-cpp's non-const operator[] inserts missing keys.
  Result<> validate_resolved(const YAML::Node& schema, const json& value, const std::string& where,
                             int depth) const {
    std::string type = schema["type"] ? schema["type"].as<std::string>() : "";
    if (type.empty() && schema["properties"]) type = "object";
    if (type == "object") FCVM_TRY(validate_object(schema, value, where, depth));
    if (type == "array") FCVM_TRY(validate_array(schema, value, where, depth));
    if (type == "string" && !value.is_string()) return wrong_type(where, type, value);
    if (type == "boolean" && !value.is_boolean()) return wrong_type(where, type, value);
    if (type == "integer" && !value.is_number_integer()) return wrong_type(where, type, value);
    if (type == "number" && !value.is_number()) return wrong_type(where, type, value);
    if (schema["enum"]) FCVM_TRY(validate_enum(schema["enum"], value, where));
    if (value.is_number()) FCVM_TRY(validate_range(schema, value, where));
    return {};
  }

  Result<YAML::Node> resolve(const std::string& ref) const {
    const std::string prefix = "#/definitions/";
    if (ref.rfind(prefix, 0) != 0) return violation(ref, "unsupported $ref");
    const YAML::Node def = m_root["definitions"][ref.substr(prefix.size())];
    if (!def) return violation(ref, "$ref to a missing definition");
    return def;
  }

  static tl::unexpected<Error> wrong_type(const std::string& where, const std::string& want,
                                          const json& value) {
    return violation(where, fmt::format("expected {}, got {}", want, type_name(value)));
  }

  Result<> validate_object(const YAML::Node& schema, const json& value, const std::string& where,
                           int depth) const {
    if (!value.is_object()) return wrong_type(where, "object", value);
    if (schema["required"]) {
      for (const auto& r : schema["required"]) {
        auto key = r.as<std::string>();
        if (!value.contains(key)) return violation(where + "." + key, "required field missing");
      }
    }
    const YAML::Node props = schema["properties"];
    const YAML::Node extra = schema["additionalProperties"];
    bool extra_allowed = extra && extra.IsScalar() && extra.as<std::string>() == "true";
    for (const auto& [key, item] : value.items()) {
      if (props && props[key]) {
        FCVM_TRY(validate(props[key], item, where + "." + key, depth + 1));
      } else if (extra && extra.IsMap()) {
        FCVM_TRY(validate(extra, item, where + "." + key, depth + 1));
      } else if (!extra_allowed) {
        return violation(where + "." + key, "unknown field");
      }
    }
    return {};
  }

  Result<> validate_array(const YAML::Node& schema, const json& value, const std::string& where,
                          int depth) const {
    if (!value.is_array()) return wrong_type(where, "array", value);
    if (!schema["items"]) return {};
    for (size_t i = 0; i < value.size(); ++i) {
      FCVM_TRY(validate(schema["items"], value[i], fmt::format("{}[{}]", where, i), depth + 1));
    }
    return {};
  }

  static Result<> validate_enum(const YAML::Node& values, const json& value,
                                const std::string& where) {
    std::vector<std::string> allowed;
    // Scalars compare as their spec text (YAML would read "Off" or "None" as other types).
    std::string text = value.is_string() ? value.get<std::string>() : value.dump();
    for (const auto& v : values) {
      allowed.push_back(v.Scalar());
      if (v.Scalar() == text) return {};
    }
    return violation(where,
                     fmt::format("{} is not one of [{}]", value.dump(), join(allowed, ", ")));
  }

  static Result<> validate_range(const YAML::Node& schema, const json& value,
                                 const std::string& where) {
    double v = value.get<double>();
    if (schema["minimum"] && v < schema["minimum"].as<double>()) {
      return violation(where, fmt::format("{} is below the minimum {}", value.dump(),
                                          schema["minimum"].Scalar()));
    }
    if (schema["maximum"] && v > schema["maximum"].as<double>()) {
      return violation(where, fmt::format("{} is above the maximum {}", value.dump(),
                                          schema["maximum"].Scalar()));
    }
    return {};
  }

  const YAML::Node& m_root;
};

std::vector<std::string> segments(std::string_view path) {
  std::vector<std::string> out;
  for (auto part : split(path, '/')) {
    if (!part.empty()) out.emplace_back(part);
  }
  return out;
}

}  // namespace

std::string expected_spec_file(const std::string& source_dir) {
  std::string shared = source_dir + "/../shared";
  if (const char* env = std::getenv("FCVM_SHARED_DIR"); env != nullptr && *env != '\0') {
    shared = env;
  }
  return shared + "/firecracker-api/firecracker.yaml";
}

std::optional<std::string> find_spec_file(const std::string& source_dir) {
  auto path = expected_spec_file(source_dir);
  if (path_exists(path)) return path;
  return std::nullopt;
}

FirecrackerSpec::FirecrackerSpec() : m_root(std::make_unique<YAML::Node>()) {}
FirecrackerSpec::~FirecrackerSpec() = default;
FirecrackerSpec::FirecrackerSpec(FirecrackerSpec&&) noexcept = default;
FirecrackerSpec& FirecrackerSpec::operator=(FirecrackerSpec&&) noexcept = default;

Result<FirecrackerSpec> FirecrackerSpec::load(const std::string& path) {
  FirecrackerSpec spec;
  try {
    *spec.m_root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return fail(ErrorCode::kInvalidInput, fmt::format("load {}: {}", path, e.what()));
  }
  if (!(*spec.m_root)["paths"] || !(*spec.m_root)["definitions"]) {
    return fail(ErrorCode::kInvalidInput, fmt::format("{}: not a Swagger spec", path));
  }
  return spec;
}

std::string FirecrackerSpec::version() const {
  const YAML::Node& root = *m_root;
  const auto info = root["info"];
  return info && info["version"] ? info["version"].Scalar() : "";
}

std::optional<std::string> FirecrackerSpec::match_path(std::string_view path) const {
  auto actual = segments(path);
  const YAML::Node& root = *m_root;
  for (const auto& entry : root["paths"]) {
    auto templ = entry.first.as<std::string>();
    auto parts = segments(templ);
    if (parts.size() != actual.size()) continue;
    bool match = true;
    for (size_t i = 0; i < parts.size() && match; ++i) {
      bool param = parts[i].size() > 2 && parts[i].front() == '{' && parts[i].back() == '}';
      match = param ? !actual[i].empty() : parts[i] == actual[i];
    }
    if (match) return templ;
  }
  return std::nullopt;
}

Result<> FirecrackerSpec::validate_request(std::string_view method, std::string_view path,
                                           const std::optional<json>& body) const {
  auto call = fmt::format("{} {}", upper(method), path);
  auto templ = match_path(path);
  if (!templ) return violation(call, "no such path in the API");
  const YAML::Node& root = *m_root;
  const YAML::Node op = root["paths"][*templ][lower(method)];
  if (!op) return violation(call, fmt::format("method not allowed on {}", *templ));
  // A default YAML::Node is a defined null node, so "not found" needs its own flag.
  std::optional<YAML::Node> body_param;
  if (op["parameters"]) {
    for (const auto& p : op["parameters"]) {
      if (p["in"] && p["in"].Scalar() == "body") body_param.emplace(p);
    }
  }
  if (!body_param) {
    if (body && !body->is_null()) return violation(call, "this operation takes no body");
    return {};
  }
  if (!body || body->is_null()) {
    const YAML::Node& param = *body_param;
    bool required = param["required"] && param["required"].as<bool>();
    if (required) return violation(call, "body required");
    return {};
  }
  const YAML::Node& param = *body_param;
  auto r = SchemaValidator(root).validate(param["schema"], *body, "body");
  if (!r) return fail(r.error().wrap(call));
  return {};
}

Result<> FirecrackerSpec::validate_response(std::string_view method, std::string_view path,
                                            int status, const json& body) const {
  auto call = fmt::format("{} {} -> {}", upper(method), path, status);
  auto templ = match_path(path);
  if (!templ) return violation(call, "no such path in the API");
  const YAML::Node& root = *m_root;
  const YAML::Node op = root["paths"][*templ][lower(method)];
  if (!op) return violation(call, "no such operation");
  YAML::Node response(op["responses"][std::to_string(status)]);
  if (!response) response.reset(op["responses"]["default"]);
  const YAML::Node& answer = response;
  if (!response) return violation(call, "status not documented");
  if (!answer["schema"]) return {};
  auto r = SchemaValidator(root).validate(answer["schema"], body, "answer");
  if (!r) return fail(r.error().wrap(call));
  return {};
}

}  // namespace fcvm::testing
