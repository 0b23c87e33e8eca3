#pragma once
// fcvm's configuration file (YAML). The first of these that is set or exists is read; none at
// all means built-in defaults:
//   1. $FCVM_CONFIG (must exist when set)
//   2. $XDG_CONFIG_HOME/fcvm/config.yml, else ~/.config/fcvm/config.yml
//   3. /etc/fcvm/config.yml
// Files are not merged: the one found is the whole configuration. Precedence over the file:
// command-line flags, then environment variables (FCVM_DATA_DIR, FCVM_GUEST_DIR), then the file,
// then the defaults below. config/fcvm.example.yml documents every key.
//
// Every key is checked: an unknown key or a bad value is kInvalidInput naming the file, the line,
// the key and the value, e.g.
//   config /etc/fcvm/config.yml:3: defaults.mem_mib: invalid value "lots": expected MiB, ...
#include <optional>
#include <string>
#include <vector>

#include "fcvm/util/result.hpp"

namespace fcvm::config {

// Bounds shared with the command line's own checks.
inline constexpr int k_min_mem_mib = 128;
inline constexpr int k_max_mem_mib = 1 << 20;
inline constexpr int k_max_vcpus = 64;
inline constexpr int k_max_stop_timeout_s = 3600;
inline constexpr int k_min_boot_timeout_s = 10;
inline constexpr int k_max_boot_timeout_s = 3600;

struct RunDefaults {
  int mem_mib = 1024;
  int vcpus = 2;
  int stop_timeout_s = 10;
  int boot_timeout_s = 180;
};

struct Config {
  std::string vmm = "auto";          // auto | qemu | firecracker
  std::string jailer = "auto";       // auto | on | off: Firecracker through its jailer
  std::string network = "rootless";  // rootless | privileged: the default of run --network
  RunDefaults defaults{};
  std::vector<std::string> insecure_registries{};  // HOST[:PORT], plain HTTP allowed
  std::string data_dir{};   // absolute; empty: not set (the built-in default applies)
  std::string guest_dir{};  // absolute; empty: not set
  std::string source{};     // the file this came from; empty: built-in defaults
};

// Where to look, in order. Empty entries are skipped.
struct Locations {
  std::string explicit_file{};  // $FCVM_CONFIG: an error when it does not exist
  std::string user_file{};      // used when it exists
  std::string system_file = "/etc/fcvm/config.yml";  // used when it exists
};

// The locations for this process's environment (FCVM_CONFIG, XDG_CONFIG_HOME, HOME).
Locations default_locations();

// The file that would be read (empty: none, built-in defaults), or an error when
// explicit_file is set but missing.
Result<std::string> find_config_file(const Locations& where);

// Finds and parses the configuration; built-in defaults when there is no file.
Result<Config> load(const Locations& where);
Result<Config> load();  // load(default_locations())

// Parses one file / one document. `origin` names it in errors (a path).
Result<Config> load_file(const std::string& path);
Result<Config> parse(const std::string& yaml_text, const std::string& origin);

}  // namespace fcvm::config
