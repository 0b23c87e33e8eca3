#pragma once
// Snapshot records (same database as the VMs; the schema lives in vm_store.cpp's migrations).
//
// A snapshot is written in two steps so that no half-written one is ever used or listed: its row
// is inserted as `creating` (which also reserves the name) with the identity of the process that
// writes it, the files are written, then the row becomes `complete` with its size. A `creating`
// row whose creator is gone (kill -9 during the write) is debris: reconcile() removes it.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/state/database.hpp"
#include "fcvm/sys/process_identity.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::state {

enum class SnapshotStatus { kCreating, kComplete };

struct SnapshotRecord {
  std::string id;
  std::string name;
  SnapshotStatus status = SnapshotStatus::kCreating;
  std::string source_id;    // the VM it was taken from
  std::string source_name;  // that VM's name at the time
  std::string image;
  std::string backend;  // qemu | firecracker: clones use the same one
  int vcpus = 0;
  int mem_mib = 0;
  std::string kernel;        // the kernel the guest runs (clones must match it)
  std::string base_disk;     // the read-only base image under the snapshot's disk
  std::string options_json;  // the run options of the source VM
  std::string plan_json;     // the plan the guest runs (clones send it again with their own id)
  std::string dir;           // $FCVM_DATA_DIR/snapshots/<id>
  int64_t size_bytes = 0;    // space the snapshot's files take
  sys::ProcessIdentity creator;
  int64_t created_ms = 0;
  std::optional<int64_t> completed_ms;
  std::string image_id;  // the stored image the source VM ran from (empty: none)
};

std::string_view snapshot_status_name(SnapshotStatus s);

class SnapshotStore {
 public:
  // The database must have been migrated (VmStore::open does it).
  explicit SnapshotStore(Database& db) : m_db(&db) {}

  // kAlreadyExists names the taken name.
  Result<> insert(const SnapshotRecord& record);
  // Marks the snapshot complete with its size (the only change a snapshot ever gets).
  Result<> complete(const std::string& id, int64_t size_bytes);
  Result<> remove(const std::string& id);
  Result<std::optional<SnapshotRecord>> get(const std::string& id);
  // A complete snapshot by exact name, exact id or unique id prefix (>= 3 characters).
  // kNotFound / kInvalidInput (ambiguous) otherwise.
  Result<SnapshotRecord> find(const std::string& ref);
  // Every row, complete or not, oldest first.
  Result<std::vector<SnapshotRecord>> list_all();
  // Ids and names of the VMs restored from this snapshot.
  Result<std::vector<std::pair<std::string, std::string>>> clones_of(const std::string& id);

 private:
  Database* m_db;
};

}  // namespace fcvm::state
