#pragma once
// Firecracker's versions as fcvm meets them: `firecracker --version` ("Firecracker v1.14.2") and
// GET / ("vmm_version": "1.14.2"). fcvm supports v1.10 to v1.16 and sends each version only what
// it accepts.
#include <compare>
#include <string>
#include <string_view>

#include "fcvm/util/result.hpp"

namespace fcvm::vmm::firecracker {

struct Version {
  int major = 0;
  int minor = 0;
  int patch = 0;
  auto operator<=>(const Version&) const = default;
  std::string to_string() const;  // "v1.14.2"
};

inline constexpr Version k_oldest_supported{1, 10, 0};
inline constexpr Version k_newest_supported{1, 16, 99};

// "1.14.2", "v1.14.2", "Firecracker v1.14.2" (a suffix such as "-dev" is ignored).
// kInvalidInput naming the text otherwise.
Result<Version> parse_version(std::string_view text);

// kUnavailable naming the version and the supported range when fcvm does not support it.
Result<> check_supported(const Version& v);

// PUT /snapshot/load's vsock_override (v1.16): older versions reject the field.
inline bool has_vsock_override(const Version& v) { return v >= Version{1, 16, 0}; }

}  // namespace fcvm::vmm::firecracker
