#pragma once
// IMAGE arguments of `fcvm run`: a registry reference (pulled inside the guest) or an archive on
// the host (`oci-archive:PATH`, `docker-archive:PATH`) that is attached read-only and loaded.
#include <optional>
#include <string>
#include <string_view>

#include "fcvm/util/result.hpp"

namespace fcvm::storage {

enum class ImageSource { kRegistry, kOciArchive, kDockerArchive };

struct ImageRef {
  ImageSource source = ImageSource::kRegistry;
  std::string original;  // as the user typed it
  // Registry: the reference split up. `domain` is empty for short names (docker.io resolves them).
  std::string domain{};
  std::string path{};
  std::string tag{};
  std::string digest{};
  // Archive: absolute path of the archive file.
  std::string archive_path{};

  // Host and port of the registry when it is on the host's loopback (localhost, 127.x.x.x).
  bool registry_on_loopback() const;
  // Port part of the domain ("" when none).
  std::string registry_port() const;
  // The name the image is known by inside the guest.
  std::string guest_ref() const;
  static std::string_view source_name(ImageSource s);
};

// Parses and validates; an invalid value is an kInvalidInput error naming it. Archive paths must
// name an existing regular file.
Result<ImageRef> parse_image_ref(std::string_view text);

}  // namespace fcvm::storage
