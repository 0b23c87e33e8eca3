#pragma once
// OCI image layouts and configs as the image store reads them: the one manifest of a layout that
// `skopeo copy` wrote, and the parts of the image config that decide how the container runs.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "fcvm/util/result.hpp"

namespace fcvm::image {

// What a container takes from its image (the OCI image config's `config` object).
struct ImageConfig {
  std::vector<std::string> entrypoint{};
  std::vector<std::string> cmd{};
  std::vector<std::string> env{};  // K=V
  std::string workdir{};
  std::string user{};
  std::string stop_signal{};
  std::vector<std::string> exposed_ports{};  // "80/tcp"
  std::map<std::string, std::string> labels{};
  std::string architecture{};
  std::string os{};
};

// Parses an OCI image config blob. kProtocol names what is malformed.
Result<ImageConfig> parse_image_config(std::string_view json);

struct LayoutImage {
  std::string manifest_digest;  // sha256:HEX
  std::string config_digest;    // sha256:HEX: the image id
  std::string config_json;
  int64_t layers = 0;
  int64_t layer_bytes = 0;  // compressed, as the manifest gives them
};

// Reads the single image of an OCI layout directory (index.json -> manifest -> config). skopeo
// verified every blob's digest when it wrote the layout.
Result<LayoutImage> read_oci_layout(const std::string& dir);

// "sha256:HEX" -> HEX (empty when malformed).
std::string digest_hex(std::string_view digest);

}  // namespace fcvm::image
