#pragma once
// Rows of the host image store (same database as the VMs; the schema lives in vm_store.cpp's
// migrations). An image is one read-only disk built from one image config digest (its id); names
// (a registry reference, or the archive it came from) point at images. VMs and snapshots that run
// from an image reference it by foreign key, so removing an image in use fails in the database
// itself, atomically with any concurrent `run`.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/state/database.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::state {

struct ImageRecord {
  std::string id;  // sha256:HEX of the image config
  std::string disk;
  std::string format;         // the disk's filesystem: ext4
  int64_t size_bytes = 0;     // space the disk takes on the host
  int64_t content_bytes = 0;  // the unpacked root filesystem
  int64_t layers = 0;
  std::string manifest_digest;
  std::string config_json;  // the OCI image config blob, verbatim
  int64_t created_ms = 0;
  std::vector<std::string> names{};  // newest first
};

// Who uses an image: VMs and snapshots (id, name).
struct ImageUsers {
  std::vector<std::pair<std::string, std::string>> vms{};
  std::vector<std::pair<std::string, std::string>> snapshots{};
  bool empty() const { return vms.empty() && snapshots.empty(); }
};

class ImageStore {
 public:
  // The database must have been migrated (VmStore::open does it).
  explicit ImageStore(Database& db) : m_db(&db) {}

  // Inserts the image unless a row with its id exists (then only the name is added), and points
  // `name` at it (moving the name off any image it named before). One transaction.
  Result<> add(const ImageRecord& image, const std::string& name, const std::string& source_stamp);
  Result<std::optional<ImageRecord>> get(const std::string& id);
  // By name, full id, or id prefix (hex after "sha256:", >= 3 characters). kNotFound otherwise;
  // an ambiguous prefix is kInvalidInput.
  Result<ImageRecord> find(const std::string& ref);
  // The image a name points at, with the stamp stored for it (archives: size and mtime).
  Result<std::optional<std::pair<ImageRecord, std::string>>> by_name(const std::string& name);
  Result<std::vector<ImageRecord>> list();
  Result<ImageUsers> users(const std::string& id);
  // Removes one name; true when the image has no name left.
  Result<bool> remove_name(const std::string& name);
  // Removes the image row (and its names). kConflict while a VM or snapshot references it.
  Result<> remove(const std::string& id);

 private:
  Database* m_db;
};

}  // namespace fcvm::state
