#include "fcvm/storage/image_ref.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <filesystem>
#include <regex>

namespace fcvm::storage {
namespace {

// The distribution reference grammar (docker/distribution reference.go), simplified to what
// podman accepts: lowercase path components, optional domain with port, tag, digest.
const std::regex& component_re() {
  static const std::regex re("[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*");
  return re;
}
const std::regex& domain_re() {
  static const std::regex re(
      "(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])"
      "?))*"
      "(?::[0-9]{1,5})?");
  return re;
}
const std::regex& tag_re() {
  static const std::regex re("[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
  return re;
}
const std::regex& digest_re() {
  static const std::regex re("sha256:[a-f0-9]{64}");
  return re;
}

tl::unexpected<Error> bad(std::string_view text, std::string_view why) {
  return fail(ErrorCode::kInvalidInput,
              fmt::format("invalid image reference \"{}\": {}", text, why));
}

Result<ImageRef> parse_archive(std::string_view text, ImageSource source, std::string_view path) {
  if (path.empty()) return bad(text, "missing archive path");
  std::error_code ec;
  auto abs = std::filesystem::absolute(std::filesystem::path(path), ec);
  if (ec) return bad(text, ec.message());
  struct stat st {};
  if (::stat(abs.c_str(), &st) != 0) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("image archive \"{}\" does not exist", std::string(path)));
  }
  if (!S_ISREG(st.st_mode)) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("image archive \"{}\" is not a regular file", std::string(path)));
  }
  ImageRef ref;
  ref.source = source;
  ref.original = std::string(text);
  ref.archive_path = abs.string();
  return ref;
}

}  // namespace

std::string_view ImageRef::source_name(ImageSource s) {
  switch (s) {
    case ImageSource::kRegistry:
      return "registry";
    case ImageSource::kOciArchive:
      return "oci-archive";
    case ImageSource::kDockerArchive:
      return "docker-archive";
  }
  return "unknown";
}

bool ImageRef::registry_on_loopback() const {
  if (source != ImageSource::kRegistry || domain.empty()) return false;
  auto host = domain.substr(0, domain.find(':'));
  return host == "localhost" || host.rfind("127.", 0) == 0;
}

std::string ImageRef::registry_port() const {
  auto colon = domain.find(':');
  return colon == std::string::npos ? std::string() : domain.substr(colon + 1);
}

std::string ImageRef::guest_ref() const {
  if (source != ImageSource::kRegistry) return original;
  std::string out = domain.empty() ? path : domain + "/" + path;
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  return out;
}

Result<ImageRef> parse_image_ref(std::string_view text) {
  if (text.empty()) return fail(ErrorCode::kInvalidInput, "image reference is empty");
  if (text.rfind("oci-archive:", 0) == 0) {
    return parse_archive(text, ImageSource::kOciArchive, text.substr(12));
  }
  if (text.rfind("docker-archive:", 0) == 0) {
    return parse_archive(text, ImageSource::kDockerArchive, text.substr(15));
  }
  if (text.size() > 255) return bad(text, "longer than 255 characters");
  ImageRef ref;
  ref.original = std::string(text);
  std::string rest(text);
  if (auto at = rest.find('@'); at != std::string::npos) {
    ref.digest = rest.substr(at + 1);
    rest.resize(at);
    if (!std::regex_match(ref.digest, digest_re())) return bad(text, "malformed digest");
  }
  // The domain is the first component when it looks like a host (has '.', ':' or is localhost).
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    auto first = rest.substr(0, slash);
    if (first.find_first_of(".:") != std::string::npos || first == "localhost") {
      if (!std::regex_match(first, domain_re())) return bad(text, "malformed registry host");
      ref.domain = first;
      rest = rest.substr(slash + 1);
    }
  }
  if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    ref.tag = rest.substr(colon + 1);
    rest.resize(colon);
    if (!std::regex_match(ref.tag, tag_re())) return bad(text, "malformed tag");
  }
  if (rest.empty()) return bad(text, "missing repository name");
  size_t start = 0;
  for (;;) {
    auto slash = rest.find('/', start);
    auto comp = rest.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (!std::regex_match(comp, component_re())) {
      return bad(text,
                 fmt::format("invalid repository component \"{}\" (lowercase letters, digits, "
                             "and separators . _ - only)",
                             comp));
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  ref.path = rest;
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

}  // namespace fcvm::storage
