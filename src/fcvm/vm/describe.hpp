#pragma once
// The public JSON shapes of what fcvm manages, one for every front end: `fcvm inspect`, `ls
// --json`, `snapshot inspect`, `images --json` and the HTTP API print the same objects.
#include <nlohmann/json.hpp>

#include "fcvm/state/image_store.hpp"
#include "fcvm/state/snapshot_store.hpp"
#include "fcvm/state/vm_store.hpp"

namespace fcvm::vm {

nlohmann::json vm_json(const state::VmRecord& r);
// With the clones made from it (read from the store).
nlohmann::json snapshot_json(state::VmStore& store, const state::SnapshotRecord& s);
nlohmann::json image_json(const state::ImageRecord& r);

}  // namespace fcvm::vm
