#pragma once
// The bearer token of `fcvm serve` on TCP: 32 random bytes as 64 hex digits in a 0600 file.
#include <string>

#include "fcvm/util/result.hpp"

namespace fcvm::api {

// The token in `path`, made first when the file does not exist.
Result<std::string> ensure_token(const std::string& path);
// A new token replaces the old one (a running server uses it from its next request).
Result<std::string> rotate_token(const std::string& path);
// The token as the file holds it now.
Result<std::string> read_token(const std::string& path);
// `Authorization: Bearer TOKEN` against the token, in constant time for a token of its length.
bool authorized(const std::string& header, const std::string& token);

}  // namespace fcvm::api
