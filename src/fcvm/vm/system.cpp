#include "fcvm/vm/system.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "fcvm/state/image_store.hpp"
#include "fcvm/storage/volume.hpp"
#include "fcvm/vm/images.hpp"
#include "fcvm/vm/lifecycle.hpp"
#include "fcvm/vm/snapshot.hpp"

namespace fcvm::vm {
namespace {

int64_t dir_bytes(const std::string& dir) {
  auto size = storage::tree_size(dir);
  return size ? static_cast<int64_t>(size->bytes) : 0;
}

bool cloned_from(const std::vector<state::VmRecord>& vms, const std::string& snapshot_id) {
  return std::any_of(vms.begin(), vms.end(),
                     [&](const state::VmRecord& r) { return r.snapshot == snapshot_id; });
}

}  // namespace

Result<SystemDf> system_df(Context& ctx, state::VmStore& store) {
  SystemDf df;
  FCVM_TRY_ASSIGN(auto vms, list_vms(store));
  for (const auto& r : vms) {
    auto bytes = dir_bytes(r.dir);
    ++df.vms.total;
    df.vms.bytes += bytes;
    if (is_active(r)) {
      ++df.vms.active;
    } else {
      df.vms.reclaimable += bytes;
    }
  }
  FCVM_TRY_ASSIGN(auto snaps, list_snapshots(store));
  for (const auto& s : snaps) {
    ++df.snapshots.total;
    df.snapshots.bytes += s.size_bytes;
    if (cloned_from(vms, s.id)) {
      ++df.snapshots.active;
    } else {
      df.snapshots.reclaimable += s.size_bytes;
    }
  }
  reconcile_images(ctx, store);
  FCVM_TRY_ASSIGN(auto images, list_images(store));
  state::ImageStore rows(store.db());
  for (const auto& img : images) {
    FCVM_TRY_ASSIGN(auto users, rows.users(img.id));
    ++df.images.total;
    df.images.bytes += img.size_bytes;
    if (!users.empty()) {
      ++df.images.active;
    } else {
      df.images.reclaimable += img.size_bytes;
    }
  }
  return df;
}

PruneReport system_prune(Context& ctx, state::VmStore& store) {
  PruneReport report;
  auto note = [&](const Error& e) { report.errors.push_back(e); };
  auto vms = list_vms(store);
  if (!vms) {
    note(vms.error());
    return report;
  }
  for (const auto& r : *vms) {
    if (is_active(r)) continue;
    auto bytes = dir_bytes(r.dir);
    if (auto done = remove_vm(store, r, false); !done) {
      note(done.error().wrap("remove VM " + r.name));
      continue;
    }
    report.vms.push_back(r.name);
    report.reclaimed += bytes;
  }
  auto left = list_vms(store);
  auto snaps = list_snapshots(store);
  if (!left || !snaps) {
    note(!left ? left.error() : snaps.error());
    return report;
  }
  for (const auto& s : *snaps) {
    if (cloned_from(*left, s.id)) continue;
    if (auto done = remove_snapshot(store, s, false); !done) {
      note(done.error().wrap("remove snapshot " + s.name));
      continue;
    }
    report.snapshots.push_back(s.name);
    report.reclaimed += s.size_bytes;
  }
  auto images = list_images(store);
  if (!images) {
    note(images.error());
    return report;
  }
  state::ImageStore rows(store.db());
  for (const auto& img : *images) {
    auto users = rows.users(img.id);
    if (!users) {
      note(users.error());
      continue;
    }
    if (!users->empty()) continue;
    if (auto done = remove_image(ctx, store, img.id, false); !done) {
      note(done.error().wrap("remove image " + img.id));
      continue;
    }
    report.images.push_back(img.names.empty() ? img.id : img.names.front());
    report.reclaimed += img.size_bytes;
  }
  return report;
}

}  // namespace fcvm::vm
