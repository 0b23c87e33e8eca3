#include "fcvm/vm/context.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

#include "fcvm/util/child_process.hpp"
#include "fcvm/util/fs.hpp"

namespace fcvm::vm {

std::string Paths::vmlinux() const {
  auto built = guest_dir + "/kernel/vmlinux-firecracker";
  return path_exists(built) ? built : guest_dir + "/kernel/vmlinux";
}

Environment Environment::capture() {
  auto get = [](const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr ? std::string(v) : std::string();
  };
  return {get("FCVM_DATA_DIR"),        get("FCVM_GUEST_DIR"), get("XDG_DATA_HOME"),
          get("XDG_CACHE_HOME"),       get("HOME"),           get("FCVM_ACCEL"),
          get("FCVM_FIRECRACKER_BIN"), get("FCVM_JAILER_BIN")};
}

Result<Paths> resolve_paths(const Environment& env, const std::string& config_data_dir,
                            const std::string& config_guest_dir) {
  Paths p;
  if (!env.data_dir.empty()) {
    p.data_dir = env.data_dir;
  } else if (!config_data_dir.empty()) {
    p.data_dir = config_data_dir;
  } else if (!env.xdg_data_home.empty()) {
    p.data_dir = env.xdg_data_home + "/fcvm";
  } else if (!env.home.empty()) {
    p.data_dir = env.home + "/.local/share/fcvm";
  } else {
    return fail(ErrorCode::kUnavailable, "HOME is not set: set FCVM_DATA_DIR");
  }
  if (!env.xdg_cache_home.empty()) {
    p.cache_dir = env.xdg_cache_home + "/fcvm";
  } else if (!env.home.empty()) {
    p.cache_dir = env.home + "/.cache/fcvm";
  }
  if (p.cache_dir.empty() || !make_dirs(p.cache_dir, 0700)) p.cache_dir.clear();
  if (!env.guest_dir.empty()) {
    p.guest_dir = env.guest_dir;
  } else if (!config_guest_dir.empty()) {
    p.guest_dir = config_guest_dir;
  } else {
    p.guest_dir = p.data_dir;
  }
  return p;
}

namespace {
std::string find_vmm_tool(const std::string& from_env, const Paths& paths, const char* name) {
  if (!from_env.empty()) return from_env;
  if (auto found = find_executable(name)) return *found;
  auto installed = paths.guest_dir + "/bin/" + name;
  return ::access(installed.c_str(), X_OK) == 0 ? installed : std::string();
}
}  // namespace

std::string firecracker_bin(const Environment& env, const Paths& paths) {
  if (env.firecracker_bin.empty() && find_executable("firecracker")) return {};
  return find_vmm_tool(env.firecracker_bin, paths, "firecracker");
}

std::string jailer_bin(const Environment& env, const Paths& paths) {
  return find_vmm_tool(env.jailer_bin, paths, "jailer");
}

}  // namespace fcvm::vm
