#include "fcvm/api/token.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fcvm/util/fs.hpp"
#include "fcvm/util/unique_fd.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fcvm::api {
namespace {

Result<std::string> write_new(const std::string& path, bool replace) {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1)
    return fail(ErrorCode::kSystem, "no random bytes for a token");
  std::string token;
  for (unsigned char b : raw) token += fmt::format("{:02x}", b);
  // Written whole under a temporary name, then renamed: a reader sees the old or the new token.
  auto tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return fail_errno(fmt::format("create {}", tmp));
  FCVM_TRY(write_all(fd.get(), token + "\n"));
  fd.reset();
  if (!replace && ::link(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    if (e == EEXIST) return read_token(path);  // made meanwhile by another server
    errno = e;
    return fail_errno(fmt::format("create {}", path));
  }
  if (replace && ::rename(tmp.c_str(), path.c_str()) != 0) {
    return fail_errno(fmt::format("replace {}", path));
  }
  ::unlink(tmp.c_str());
  return token;
}

}  // namespace

Result<std::string> read_token(const std::string& path) {
  FCVM_TRY_ASSIGN(auto text, read_file(path));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.size() < 32) {
    return fail(
        ErrorCode::kInvalidInput,
        fmt::format("{}: not a token (expected 64 hex digits; remove it to make one)", path));
  }
  return text;
}

Result<std::string> ensure_token(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if ((st.st_mode & 077) != 0) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("{} is readable by others (mode {:o}): chmod 600 it or "
                              "fcvm serve --rotate-token",
                              path, st.st_mode & 07777));
    }
    return read_token(path);
  }
  return write_new(path, false);
}

Result<std::string> rotate_token(const std::string& path) { return write_new(path, true); }

bool authorized(const std::string& header, const std::string& token) {
  constexpr std::string_view prefix = "Bearer ";
  if (header.size() != prefix.size() + token.size() || header.rfind(prefix, 0) != 0) return false;
  return CRYPTO_memcmp(header.data() + prefix.size(), token.data(), token.size()) == 0;
}

}  // namespace fcvm::api
