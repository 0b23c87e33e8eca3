#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fcvm {

std::string_view trim(std::string_view s);
std::vector<std::string_view> split(std::string_view s, char sep);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
// Strict decimal parse of the whole string into [min, max]; nullopt otherwise.
std::optional<int64_t> parse_int(std::string_view s, int64_t min, int64_t max);
// Quotes a string for a POSIX shell when it needs it (for messages and logs).
std::string shell_quote(std::string_view s);

}  // namespace fcvm
