#include "fcvm/vm/images.hpp"

#include <fmt/format.h>

#include "fcvm/state/snapshot_store.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/vm/lifecycle.hpp"
#include "fcvm/vm/snapshot.hpp"

namespace fcvm::vm {

image::StoreLayout image_layout(const Context& ctx) {
  return image::StoreLayout::under(ctx.paths.data_dir);
}

Result<> resolve_image(Context& ctx, state::VmStore& store, RunOptions& options,
                       const image::Progress& progress) {
  if (options.guest_pull) return {};
  image::PullRequest request{options.image, options.insecure_registries, options.authfile};
  state::ImageStore rows(store.db());
  auto img = image::ensure(image_layout(ctx), rows, request, progress);
  if (!img) return tl::unexpected<Error>(img.error().wrap("image " + options.image.original));
  options.image_id = img->id;
  options.image_disk = img->disk;
  options.image_config_json = img->config_json;
  return {};
}

Result<state::ImageRecord> pull_image(Context& ctx, state::VmStore& store,
                                      const image::PullRequest& request,
                                      const image::Progress& progress) {
  state::ImageStore rows(store.db());
  return image::pull(image_layout(ctx), rows, request, progress);
}

Result<std::vector<state::ImageRecord>> list_images(state::VmStore& store) {
  state::ImageStore rows(store.db());
  return rows.list();
}

void reconcile_images(Context& ctx, state::VmStore& store) {
  auto layout = image_layout(ctx);
  if (!path_exists(layout.root)) return;
  state::ImageStore rows(store.db());
  image::reap(layout, rows);
}

Result<state::ImageRecord> find_image(state::VmStore& store, const std::string& ref) {
  state::ImageStore rows(store.db());
  auto by_ref = rows.find(ref);
  if (by_ref || by_ref.error().code() != ErrorCode::kNotFound) return by_ref;
  // A reference as `run` takes it ("busybox" is stored as "busybox:latest").
  if (auto parsed = storage::parse_image_ref(ref)) {
    auto named = rows.find(image::store_name(*parsed));
    if (named) return named;
  }
  return by_ref;
}

Result<RemovedImage> remove_image(Context& ctx, state::VmStore& store, const std::string& ref,
                                  bool force) {
  state::ImageStore rows(store.db());
  auto img = find_image(store, ref);
  if (!img) return tl::unexpected<Error>(img.error());
  RemovedImage out;
  // A name other than the image's last: only the name goes.
  std::string name;
  for (const auto& n : img->names) {
    if (n == ref) name = n;
  }
  if (name.empty()) {
    if (auto parsed = storage::parse_image_ref(ref)) {
      auto stored = image::store_name(*parsed);
      for (const auto& n : img->names) {
        if (n == stored) name = n;
      }
    }
  }
  if (!name.empty() && img->names.size() > 1) {
    FCVM_TRY(rows.remove_name(name));
    out.untagged.push_back(name);
    return out;
  }
  auto users = rows.users(img->id);
  if (!users) return tl::unexpected<Error>(users.error());
  if (!users->empty()) {
    std::vector<std::string> who;
    for (const auto& [id, n] : users->vms) who.push_back("VM " + n);
    for (const auto& [id, n] : users->snapshots) who.push_back("snapshot " + n);
    if (!force) {
      return fail(ErrorCode::kConflict,
                  fmt::format("image {} is in use by {}: remove them first, or use rmi -f", ref,
                              join(who, ", ")));
    }
    for (const auto& [id, n] : users->vms) {
      auto rec = store.get(id);
      if (!rec) return tl::unexpected<Error>(rec.error());
      if (!*rec) continue;
      FCVM_TRY_CTX(remove_vm(store, **rec, /*force=*/true), "remove VM " + n);
      out.removed_vms.push_back(n);
    }
    state::SnapshotStore snaps(store.db());
    for (const auto& [id, n] : users->snapshots) {
      auto snap = snaps.get(id);
      if (!snap) return tl::unexpected<Error>(snap.error());
      if (!*snap) continue;
      FCVM_TRY_CTX(remove_snapshot(store, **snap, /*force=*/true), "remove snapshot " + n);
      out.removed_snapshots.push_back(n);
    }
  }
  FCVM_TRY(image::remove(image_layout(ctx), rows, *img));
  out.untagged = img->names;
  out.deleted = img->id;
  return out;
}

}  // namespace fcvm::vm
