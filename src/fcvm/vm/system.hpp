#pragma once
// `fcvm system df` and `fcvm system prune`: the space the data directory's VMs, snapshots and
// stored images take, and removing what nothing uses.
#include <cstdint>
#include <string>
#include <vector>

#include "fcvm/state/vm_store.hpp"
#include "fcvm/vm/context.hpp"

namespace fcvm::vm {

struct SpaceUse {
  int64_t total = 0;
  int64_t active = 0;       // VMs: running; snapshots: cloned by a VM; images: used
  int64_t bytes = 0;        // space on the host (allocated blocks)
  int64_t reclaimable = 0;  // what prune would free
};
struct SystemDf {
  SpaceUse images, vms, snapshots;
};
Result<SystemDf> system_df(Context& ctx, state::VmStore& store);

// What prune removed (names), the space it freed, and what it could not remove.
struct PruneReport {
  std::vector<std::string> vms, snapshots, images;
  int64_t reclaimed = 0;
  std::vector<Error> errors;
};
// Removes VMs that do not run, then snapshots no VM was cloned from, then images no VM or
// snapshot uses (in that order: each step frees users of the next). A failure is reported and
// the rest continues.
PruneReport system_prune(Context& ctx, state::VmStore& store);

}  // namespace fcvm::vm
