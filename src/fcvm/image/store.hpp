#pragma once
// The host image store: images fetched once on the host and kept as read-only, content-addressed
// disks that every VM of the image attaches (DATA/image-store/disks/HEX.ext4, HEX = the config
// digest). A pull is: skopeo copy to an OCI layout, umoci unpack (whiteouts, opaque directories,
// hard links, xattrs, numeric owners), mke2fs -d into a new file, rename into place, then the
// database row. Work happens in DATA/image-store/tmp/PID-START-RANDOM, removed on failure and by
// the next pull when its owner died; a disk is only ever renamed into place complete, under a
// per-image lock, so two pulls of one image build it once.
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "fcvm/image/oci.hpp"
#include "fcvm/state/image_store.hpp"
#include "fcvm/storage/image_ref.hpp"
#include "fcvm/util/result.hpp"

namespace fcvm::image {

struct StoreLayout {
  std::string root;  // DATA/image-store
  std::string disks() const { return root + "/disks"; }
  std::string tmp() const { return root + "/tmp"; }
  std::string locks() const { return root + "/locks"; }
  std::string disk_for(const std::string& id) const;  // id: sha256:HEX
  static StoreLayout under(const std::string& data_dir) { return {data_dir + "/image-store"}; }
};

struct PullRequest {
  storage::ImageRef ref;
  std::vector<std::string> insecure_registries{};  // HOST[:PORT] over plain HTTP / unverified TLS
  std::string authfile{};                          // empty: skopeo's default (as podman's)
};

// Progress of a long step: called with a short phrase when a step begins ("fetching", ...).
using Progress = std::function<void(std::string_view step)>;

// The name an image is stored under: a registry reference in full (tag "latest" when it has
// none), or "oci-archive:/ABS/PATH" / "docker-archive:/ABS/PATH".
std::string store_name(const storage::ImageRef& ref);

// Fetches and converts the image (always: `fcvm pull`), names it, and returns its record. The
// disk is built only when no image with the same config digest is stored already.
Result<state::ImageRecord> pull(const StoreLayout& layout, state::ImageStore& rows,
                                const PullRequest& request, const Progress& progress);

// The stored image for a run: a registry name already stored is used as it is; an archive is
// used when its size and modification time are those it was imported with. Anything else is
// pulled first.
Result<state::ImageRecord> ensure(const StoreLayout& layout, state::ImageStore& rows,
                                  const PullRequest& request, const Progress& progress);

// A root filesystem given as directories (containerd's snapshot layers, top first as overlayfs
// stacks them) stored as an image under `id` and `name`: built once, like a pull, and reused by
// every later import of the same id (the caller derives it from the layers, which never change).
// Several layers are merged by a read-only overlay mount in a mount namespace of its own (root
// only), so a killed import leaves no mount behind.
struct LayersImport {
  std::string id;    // sha256:HEX
  std::string name;  // the name it is stored under
  std::vector<std::string> layers;
  std::string config_json;  // the OCI image config recorded with it
};
Result<state::ImageRecord> import_layers(const StoreLayout& layout, state::ImageStore& rows,
                                         const LayersImport& request, const Progress& progress);

// Removes an image's row and then its disk. kConflict while a VM or snapshot uses it.
Result<> remove(const StoreLayout& layout, state::ImageStore& rows,
                const state::ImageRecord& image);

// Removes work directories whose pull died and disks that no row names (nobody holds their lock).
void reap(const StoreLayout& layout, state::ImageStore& rows);

}  // namespace fcvm::image
