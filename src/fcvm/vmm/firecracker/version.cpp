#include "fcvm/vmm/firecracker/version.hpp"

#include <fmt/format.h>

#include <charconv>

namespace fcvm::vmm::firecracker {

std::string Version::to_string() const { return fmt::format("v{}.{}.{}", major, minor, patch); }

Result<Version> parse_version(std::string_view text) {
  auto invalid = [text] {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("'{}' is not a Firecracker version (want e.g. v1.14.2)", text));
  };
  std::string_view s = text;
  if (auto space = s.rfind(' '); space != std::string_view::npos) s.remove_prefix(space + 1);
  if (!s.empty() && s.front() == 'v') s.remove_prefix(1);
  Version v;
  int* parts[] = {&v.major, &v.minor, &v.patch};
  const char* p = s.data();
  const char* end = s.data() + s.size();
  for (size_t i = 0; i < 3; ++i) {
    auto [next, ec] = std::from_chars(p, end, *parts[i]);
    if (ec != std::errc() || next == p || *parts[i] < 0) return invalid();
    p = next;
    if (i < 2) {
      if (p == end || *p != '.') return invalid();
      ++p;
    }
  }
  if (p != end && *p != '-' && *p != '+') return invalid();
  return v;
}

Result<> check_supported(const Version& v) {
  if (v >= k_oldest_supported && v <= k_newest_supported) return {};
  return fail(ErrorCode::kUnavailable,
              fmt::format("Firecracker {} is not supported: fcvm supports v{}.{} to v{}.{}",
                          v.to_string(), k_oldest_supported.major, k_oldest_supported.minor,
                          k_newest_supported.major, k_newest_supported.minor));
}

}  // namespace fcvm::vmm::firecracker
