#pragma once
#include <nlohmann/json.hpp>

#include "fcvm/state/vm_store.hpp"

namespace fcvm::cli {

// The public JSON shape of a VM (inspect, ls --json).
nlohmann::json inspect_json(const state::VmRecord& r);

}  // namespace fcvm::cli
