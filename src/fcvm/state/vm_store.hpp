#pragma once
// The VM store: one row per VM in $FCVM_DATA_DIR/state.db (SQLite, WAL). Many fcvm processes use
// it at once; every write is one short IMMEDIATE transaction, and names are unique by constraint,
// so concurrent runs can never create two VMs with one name or lose a row.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/state/database.hpp"
#include "fcvm/sys/process_identity.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::state {

// kPaused: the VMM is paused (fcvm pause); the VM still counts as running.
// kRestarting: the container ended and its restart policy starts it again after a back-off.
enum class VmStatus { kCreated, kStarting, kRunning, kPaused, kStopping, kRestarting, kExited };
std::string_view status_name(VmStatus s);
std::optional<VmStatus> parse_status(std::string_view s);

struct VmRecord {
  std::string id;
  std::string name;
  std::string image;    // as the user typed it
  std::string backend;  // qemu | firecracker (resolved when it starts)
  VmStatus status = VmStatus::kCreated;
  int vcpus = 0;
  int mem_mib = 0;
  std::string ports;         // canonical, comma separated: 127.0.0.1:8080:80/tcp,...
  std::string options_json;  // the validated run options: `start` boots the VM from them again
  std::string dir;
  bool auto_remove = false;  // remove the VM when it ends (foreground run)
  sys::ProcessIdentity monitor;
  sys::ProcessIdentity vmm;
  sys::ProcessIdentity helper;  // the network helper (slirp4netns)
  std::string network_json;     // guest address etc., for inspect
  int64_t created_ms = 0;
  std::optional<int64_t> started_ms;
  std::optional<int64_t> finished_ms;
  std::optional<int64_t> exit_code;
  std::string error;
  std::string snapshot;  // a clone: the id of the snapshot it was restored from
  std::string image_id;  // the stored image it runs from (empty: the image is fetched in the guest)
  std::string vmm_version;  // of the VMM that last ran it ("v1.14.2"; empty: not known)
  int restart_count = 0;    // restarts by its restart policy since it was last started by hand
  std::optional<int64_t> expires_ms;  // its time-to-live ends then (unix ms): the monitor stops it
};

int64_t now_ms();

class VmStore {
 public:
  // Opens (creating if needed) and migrates the schema.
  static Result<VmStore> open(const std::string& path);

  // kAlreadyExists names the taken name.
  Result<> insert(const VmRecord& record);
  Result<> update(const VmRecord& record);
  Result<> remove(const std::string& id);
  Result<std::optional<VmRecord>> get(const std::string& id);
  // By exact name, exact id or unique id prefix (>= 3 characters). kNotFound / kInvalidInput
  // (ambiguous) otherwise.
  Result<VmRecord> find(const std::string& ref);
  Result<std::vector<VmRecord>> list();
  Database& db() { return m_db; }
  // The database file this store was opened from.
  const std::string& path() const { return m_path; }

 private:
  VmStore(Database db, std::string path) : m_db(std::move(db)), m_path(std::move(path)) {}
  Result<> migrate();
  Database m_db;
  std::string m_path;
};

}  // namespace fcvm::state
