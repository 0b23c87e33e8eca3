#pragma once
// Context: what every vm:: operation needs, passed explicitly (no globals): where things live and
// the seam for running helpers.
#include <string>

#include "fcvm/sys/command_runner.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::vm {

struct Paths {
  std::string data_dir;   // $FCVM_DATA_DIR or $XDG_DATA_HOME/fcvm or ~/.local/share/fcvm
  std::string guest_dir;  // guest artifacts; $FCVM_GUEST_DIR or data_dir
  std::string vms_dir() const { return data_dir + "/vms"; }
  std::string snapshots_dir() const { return data_dir + "/snapshots"; }
  std::string kernel() const { return guest_dir + "/kernel/vmlinuz"; }
  std::string vmlinux() const;  // Firecracker: a built kernel if present, else the extracted one
  std::string initrd() const { return guest_dir + "/kernel/initrd.img"; }
  std::string rootfs() const { return guest_dir + "/images/rootfs.ext4"; }
  // The KVM probe's verdict, per user and boot: $XDG_CACHE_HOME/fcvm or ~/.cache/fcvm (shared by
  // every data directory of the user), else the data directory.
  std::string cache_dir;
  std::string accel_cache() const {
    return (cache_dir.empty() ? data_dir : cache_dir) + "/accel-probe";
  }
};

Result<Paths> default_paths();

struct Context {
  Paths paths;
  sys::CommandRunner& runner;
};

}  // namespace fcvm::vm
