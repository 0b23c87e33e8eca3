#pragma once
// The image store as the engine offers it to every front end: pull, list, find, remove, and the
// stored image a run uses (pulled first when missing).
#include <string>
#include <vector>

#include "fcvm/image/store.hpp"
#include "fcvm/state/image_store.hpp"
#include "fcvm/state/vm_store.hpp"
#include "fcvm/vm/context.hpp"
#include "fcvm/vm/options.hpp"

namespace fcvm::vm {

image::StoreLayout image_layout(const Context& ctx);

// Unless the run fetches its image in the guest: the stored image of options.image (pulled when
// not stored yet), recorded in options (image_id, image_disk, image_config_json).
Result<> resolve_image(Context& ctx, state::VmStore& store, RunOptions& options,
                       const image::Progress& progress);

Result<state::ImageRecord> pull_image(Context& ctx, state::VmStore& store,
                                      const image::PullRequest& request,
                                      const image::Progress& progress);
Result<std::vector<state::ImageRecord>> list_images(state::VmStore& store);
// What a killed pull left (its work directory; a disk renamed into place but never recorded):
// removed. `ls` and `images` call it, as they reconcile VMs.
void reconcile_images(Context& ctx, state::VmStore& store);
Result<state::ImageRecord> find_image(state::VmStore& store, const std::string& ref);

// What `rmi REF` did: names untagged, and the image id when the image itself was deleted (with the
// VMs and snapshots that used it when forced).
struct RemovedImage {
  std::vector<std::string> untagged{};
  std::string deleted{};
  std::vector<std::string> removed_vms{};
  std::vector<std::string> removed_snapshots{};
};

// By a name that is not the image's last: untags it. Otherwise removes the image; while a VM or
// snapshot uses it that is kConflict naming them, unless `force` removes them first.
Result<RemovedImage> remove_image(Context& ctx, state::VmStore& store, const std::string& ref,
                                  bool force);

}  // namespace fcvm::vm
