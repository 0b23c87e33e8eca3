#pragma once
// Test support: Firecracker's OpenAPI (Swagger 2.0) spec as a request validator. It checks that a
// path+method exists (path templates such as /drives/{drive_id} included) and that the JSON body
// validates against the operation's body schema: $ref, type (object, string, integer, number,
// boolean, array), required, properties, enum, items, minimum/maximum, and no unknown fields
// (Firecracker's serde models deny them) unless the schema says additionalProperties: true.
//
// The spec is not part of this repository: find_spec_file() looks for it next to the source tree
// (<source>/../shared/firecracker-api/firecracker.yaml, or $FCVM_SHARED_DIR/firecracker-api/...)
// and tests skip when it is absent.
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "fcvm/util/result.hpp"

namespace YAML {
class Node;
}

namespace fcvm::testing {

// The spec file, or nullopt when it is not present on this machine. source_dir: the repository
// root (FCVM_SOURCE_DIR in the tests).
std::optional<std::string> find_spec_file(const std::string& source_dir);
// Where find_spec_file looks (for skip messages).
std::string expected_spec_file(const std::string& source_dir);

class FirecrackerSpec {
 public:
  static Result<FirecrackerSpec> load(const std::string& path);
  ~FirecrackerSpec();
  FirecrackerSpec(FirecrackerSpec&&) noexcept;
  FirecrackerSpec& operator=(FirecrackerSpec&&) noexcept;

  // info.version, e.g. "1.16.1".
  std::string version() const;

  // Validates a request. body: nullopt when the request has none. The error names the first
  // violation, e.g. `PUT /drives/{drive_id}: body.is_root_device: required field missing`.
  Result<> validate_request(std::string_view method, std::string_view path,
                            const std::optional<nlohmann::json>& body) const;
  // Validates an answer against the operation's schema for that status (or "default").
  Result<> validate_response(std::string_view method, std::string_view path, int status,
                             const nlohmann::json& body) const;
  // The template that matches path ("/drives/{drive_id}"), or nullopt.
  std::optional<std::string> match_path(std::string_view path) const;

 private:
  FirecrackerSpec();
  std::unique_ptr<YAML::Node> m_root;
};

}  // namespace fcvm::testing
