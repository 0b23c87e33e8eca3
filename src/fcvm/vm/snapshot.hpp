#pragma once
// Snapshots of running VMs and the clones restored from them.
//
// A snapshot is a directory $FCVM_DATA_DIR/snapshots/<id> plus its row (state/snapshot_store.hpp):
//   memory.ram   guest RAM (clones map it copy-on-write; never written after the snapshot)
//   state.bin    the VMM's device state (QEMU migration stream / Firecracker snapshot file)
//   disk.qcow2   the root disk at that moment (QEMU: a copy of the VM's overlay, over the base)
//   disk.ext4    (Firecracker: a reflink or sparse copy of the VM's raw disk)
//   vmlinuz, initrd.img   the kernel the guest runs (QEMU reloads them; they must not change)
//   image.tar    the image archive disk, when the image came from an archive
// Everything is read-only once written (memory.ram stays 0600: QEMU opens it read-write to map
// it privately) and the directory is 0500 until `snapshot rm`.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/state/snapshot_store.hpp"
#include "fcvm/state/vm_store.hpp"
#include "fcvm/vm/context.hpp"
#include "fcvm/vm/options.hpp"
#include "fcvm/vm/setup.hpp"

namespace fcvm::vm {

struct SnapshotFiles {
  std::string memory, state, disk, kernel, initrd, image;
};
SnapshotFiles snapshot_files(const state::SnapshotRecord& snap);

// Validates a snapshot name (the rules of VM names). kInvalidInput names the value.
Result<> validate_snapshot_name(const std::string& name);

// Writes a snapshot of the running VM (called by its monitor, which owns `vm`). The guest is
// paused while its disks, memory and device state are saved; it runs again afterwards when
// resume_after (and always when the snapshot fails). Nothing is left of a snapshot that fails.
Result<state::SnapshotRecord> take_snapshot(Context& ctx, state::VmStore& store,
                                            const state::VmRecord& rec, VmResources& vm,
                                            const std::string& name, bool resume_after);

// Removes rows (and directories) of snapshots whose writer died before completing them.
Result<> reconcile_snapshots(state::VmStore& store);
// Complete snapshots, oldest first (after reconcile_snapshots).
Result<std::vector<state::SnapshotRecord>> list_snapshots(state::VmStore& store);
// A complete snapshot by name or id (prefix).
Result<state::SnapshotRecord> find_snapshot(state::VmStore& store, const std::string& ref);
// Deletes a snapshot. Refused (kInvalidInput, naming them) while VMs restored from it exist,
// unless force: then those VMs are stopped and removed first.
Result<> remove_snapshot(state::VmStore& store, const state::SnapshotRecord& snap, bool force);

// What a clone may set for itself; everything else comes from the snapshot.
struct CloneOptions {
  std::string name{};
  std::map<std::string, std::string> labels{};  // over the snapshot's
  std::vector<net::PortMapping> ports{};
  std::optional<NetworkMode> network{};  // none: the snapshot's
  std::string wait_ready{};
  bool keep_on_failure = false;
  std::string timings_file{};
  int64_t ttl_s = 0;  // --timeout (0: none)
};
// The run options of a clone: the snapshot's, with the clone's own name, ports and gate.
Result<RunOptions> clone_run_options(const state::SnapshotRecord& snap, const CloneOptions& c);
// A new VM record restored from `snap` on its first start (then booted from its own disk).
Result<state::VmRecord> create_clone(Context& ctx, state::VmStore& store,
                                     const state::SnapshotRecord& snap, const RunOptions& options,
                                     bool auto_remove);

}  // namespace fcvm::vm
