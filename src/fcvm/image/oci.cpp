#include "fcvm/image/oci.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "fcvm/util/fs.hpp"

namespace fcvm::image {
namespace {

using nlohmann::json;

tl::unexpected<Error> malformed(std::string_view what, std::string_view why) {
  return fail(ErrorCode::kProtocol, fmt::format("{}: {}", what, why));
}

Result<json> parse(std::string_view text, std::string_view what) {
  auto doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return malformed(what, "not a JSON object");
  return doc;
}

// A string array field; absent or null is empty.
Result<std::vector<std::string>> strings(const json& obj, const char* key, std::string_view what) {
  std::vector<std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return out;
  if (!it->is_array()) return malformed(what, fmt::format("{} is not an array", key));
  for (const auto& v : *it) {
    if (!v.is_string()) return malformed(what, fmt::format("{} holds a non-string", key));
    out.push_back(v.get<std::string>());
  }
  return out;
}

Result<std::string> string(const json& obj, const char* key, std::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string()) return malformed(what, fmt::format("{} is not a string", key));
  return it->get<std::string>();
}

Result<json> read_blob(const std::string& dir, const std::string& digest, std::string_view what) {
  auto hex = digest_hex(digest);
  if (hex.empty()) return malformed(what, fmt::format("malformed digest \"{}\"", digest));
  auto text = read_file(fmt::format("{}/blobs/sha256/{}", dir, hex));
  if (!text) return tl::unexpected<Error>(text.error().wrap(what));
  return parse(*text, what);
}

}  // namespace

std::string digest_hex(std::string_view digest) {
  constexpr std::string_view prefix = "sha256:";
  if (digest.substr(0, prefix.size()) != prefix) return {};
  auto hex = digest.substr(prefix.size());
  if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    return {};
  }
  return std::string(hex);
}

Result<ImageConfig> parse_image_config(std::string_view text) {
  constexpr std::string_view what = "image config";
  auto doc = parse(text, what);
  if (!doc) return tl::unexpected<Error>(doc.error());
  ImageConfig c;
  FCVM_TRY_ASSIGN(c.architecture, string(*doc, "architecture", what));
  FCVM_TRY_ASSIGN(c.os, string(*doc, "os", what));
  auto it = doc->find("config");
  if (it == doc->end() || it->is_null()) return c;
  if (!it->is_object()) return malformed(what, "config is not an object");
  const auto& cfg = *it;
  FCVM_TRY_ASSIGN(c.entrypoint, strings(cfg, "Entrypoint", what));
  FCVM_TRY_ASSIGN(c.cmd, strings(cfg, "Cmd", what));
  FCVM_TRY_ASSIGN(c.env, strings(cfg, "Env", what));
  FCVM_TRY_ASSIGN(c.workdir, string(cfg, "WorkingDir", what));
  FCVM_TRY_ASSIGN(c.user, string(cfg, "User", what));
  FCVM_TRY_ASSIGN(c.stop_signal, string(cfg, "StopSignal", what));
  if (auto p = cfg.find("ExposedPorts"); p != cfg.end() && !p->is_null()) {
    if (!p->is_object()) return malformed(what, "ExposedPorts is not an object");
    for (const auto& [port, _] : p->items()) c.exposed_ports.push_back(port);
  }
  if (auto l = cfg.find("Labels"); l != cfg.end() && !l->is_null()) {
    if (!l->is_object()) return malformed(what, "Labels is not an object");
    for (const auto& [k, v] : l->items()) {
      if (!v.is_string()) return malformed(what, fmt::format("label {} is not a string", k));
      c.labels[k] = v.get<std::string>();
    }
  }
  return c;
}

Result<LayoutImage> read_oci_layout(const std::string& dir) {
  auto index_text = read_file(dir + "/index.json");
  if (!index_text) return tl::unexpected<Error>(index_text.error().wrap("OCI layout"));
  auto index = parse(*index_text, "OCI layout index");
  if (!index) return tl::unexpected<Error>(index.error());
  auto manifests = index->find("manifests");
  if (manifests == index->end() || !manifests->is_array() || manifests->size() != 1) {
    return malformed("OCI layout index", "expected exactly one manifest");
  }
  LayoutImage out;
  FCVM_TRY_ASSIGN(out.manifest_digest, string((*manifests)[0], "digest", "OCI layout index"));
  auto manifest = read_blob(dir, out.manifest_digest, "image manifest");
  if (!manifest) return tl::unexpected<Error>(manifest.error());
  auto config = manifest->find("config");
  if (config == manifest->end() || !config->is_object()) {
    return malformed("image manifest", "no config descriptor");
  }
  FCVM_TRY_ASSIGN(out.config_digest, string(*config, "digest", "image manifest"));
  if (digest_hex(out.config_digest).empty()) {
    return malformed("image manifest",
                     fmt::format("malformed config digest \"{}\"", out.config_digest));
  }
  auto config_text =
      read_file(fmt::format("{}/blobs/sha256/{}", dir, digest_hex(out.config_digest)));
  if (!config_text) return tl::unexpected<Error>(config_text.error().wrap("image config"));
  out.config_json = std::move(*config_text);
  FCVM_TRY(parse_image_config(out.config_json));
  auto layers = manifest->find("layers");
  if (layers == manifest->end() || !layers->is_array()) {
    return malformed("image manifest", "no layers");
  }
  for (const auto& l : *layers) {
    out.layers++;
    if (auto size = l.find("size"); size != l.end() && size->is_number_integer()) {
      out.layer_bytes += size->get<int64_t>();
    }
  }
  return out;
}

}  // namespace fcvm::image
