#pragma once
// Context: what every vm:: operation needs, passed explicitly (no globals): where things live and
// the seam for running helpers.
#include <string>

#include "fcvm/sys/command_runner.hpp"
#include "fcvm/util/result.hpp"
#include "fcvm/vmm/registry.hpp"

namespace fcvm::vm {

struct Paths {
  std::string data_dir;   // $FCVM_DATA_DIR or $XDG_DATA_HOME/fcvm or ~/.local/share/fcvm
  std::string guest_dir;  // guest artifacts; $FCVM_GUEST_DIR or data_dir
  std::string vms_dir() const { return data_dir + "/vms"; }
  std::string snapshots_dir() const { return data_dir + "/snapshots"; }
  std::string kernel() const { return guest_dir + "/kernel/vmlinuz"; }
  std::string vmlinux() const;  // Firecracker: a built kernel if present, else the extracted one
  std::string kernel_for(vmm::KernelKind kind) const {
    return kind == vmm::KernelKind::kUncompressed ? vmlinux() : kernel();
  }
  std::string initrd() const { return guest_dir + "/kernel/initrd.img"; }
  std::string rootfs() const { return guest_dir + "/images/rootfs.ext4"; }
  // The KVM probe's verdict, per user and boot: $XDG_CACHE_HOME/fcvm or ~/.cache/fcvm (shared by
  // every data directory of the user), else the data directory.
  std::string cache_dir;
  std::string accel_cache() const {
    return (cache_dir.empty() ? data_dir : cache_dir) + "/accel-probe";
  }
};

// The environment variables fcvm reads, captured once by a front end's main(): below the front
// ends nothing calls getenv, so a long-running server serves each request with the settings it
// resolved, not with its own environment.
struct Environment {
  std::string data_dir{};         // FCVM_DATA_DIR
  std::string guest_dir{};        // FCVM_GUEST_DIR
  std::string xdg_data_home{};    // XDG_DATA_HOME
  std::string xdg_cache_home{};   // XDG_CACHE_HOME
  std::string home{};             // HOME
  std::string accel{};            // FCVM_ACCEL: kvm | tcg forces QEMU's accelerator
  std::string firecracker_bin{};  // FCVM_FIRECRACKER_BIN: the Firecracker binary (else PATH)
  std::string jailer_bin{};       // FCVM_JAILER_BIN: Firecracker's jailer (else PATH)
  static Environment capture();
};

// Where things live, with one precedence: environment, then the configuration file's data_dir
// and guest_dir (empty: not set), then the built-in defaults ($XDG_DATA_HOME/fcvm, else
// ~/.local/share/fcvm; the guest artifacts in the data directory). Creates the cache directory.
Result<Paths> resolve_paths(const Environment& env, const std::string& config_data_dir = {},
                            const std::string& config_guest_dir = {});

// The Firecracker binary fcvm uses: FCVM_FIRECRACKER_BIN; else "" (the backend takes
// "firecracker" from PATH) when PATH has one; else the one scripts/fcvm-init.sh installs,
// <guest dir>/bin/firecracker, when it is there.
std::string firecracker_bin(const Environment& env, const Paths& paths);
// The jailer: FCVM_JAILER_BIN, else PATH, else <guest dir>/bin/jailer; "" when there is none.
std::string jailer_bin(const Environment& env, const Paths& paths);

struct Context {
  Paths paths;
  sys::CommandRunner& runner;
  std::string accel{};            // "kvm" or "tcg" forces QEMU's accelerator; empty: probe
  std::string firecracker_bin{};  // empty: "firecracker" from PATH
  std::string jailer_bin{};       // empty: none found
};

}  // namespace fcvm::vm
