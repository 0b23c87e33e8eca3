#include "fcvm/vm/context.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

#include "fcvm/util/fs.hpp"

namespace fcvm::vm {

std::string Paths::vmlinux() const {
  auto built = guest_dir + "/kernel/vmlinux-firecracker";
  return path_exists(built) ? built : guest_dir + "/kernel/vmlinux";
}

Result<Paths> default_paths() {
  Paths p;
  if (const char* d = std::getenv("FCVM_DATA_DIR"); d != nullptr && *d != '\0') {
    p.data_dir = d;
  } else if (const char* x = std::getenv("XDG_DATA_HOME"); x != nullptr && *x != '\0') {
    p.data_dir = std::string(x) + "/fcvm";
  } else {
    const char* home = std::getenv("HOME");
    if (home == nullptr || *home == '\0') {
      return fail(ErrorCode::kUnavailable, "HOME is not set: set FCVM_DATA_DIR");
    }
    p.data_dir = std::string(home) + "/.local/share/fcvm";
  }
  if (const char* c = std::getenv("XDG_CACHE_HOME"); c != nullptr && *c != '\0') {
    p.cache_dir = std::string(c) + "/fcvm";
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    p.cache_dir = std::string(home) + "/.cache/fcvm";
  }
  if (p.cache_dir.empty() || !make_dirs(p.cache_dir, 0700)) p.cache_dir.clear();
  if (const char* g = std::getenv("FCVM_GUEST_DIR"); g != nullptr && *g != '\0') {
    p.guest_dir = g;
  } else {
    p.guest_dir = p.data_dir;
  }
  return p;
}

}  // namespace fcvm::vm
