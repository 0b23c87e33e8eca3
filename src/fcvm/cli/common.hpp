#pragma once
// What the subcommands share: the context and the store, and name resolution.
#include <optional>
#include <string>
#include <vector>

#include "fcvm/config/config.hpp"
#include "fcvm/state/vm_store.hpp"
#include "fcvm/vm/context.hpp"

namespace fcvm::cli {

struct Session {
  config::Config config;
  bool config_loaded = false;
  vm::Paths paths;
  std::optional<vm::Context> ctx;
  std::optional<state::VmStore> store;
};

// Loads the configuration file (config/fcvm.example.yml documents it).
Result<> load_config(Session& s);
// Opens the context and the store (creating the data directory on first use); loads the
// configuration first unless load_config already did.
Result<> open_session(Session& s);
// A VM by name, id or unique id prefix, reconciled (a dead monitor's leftovers cleaned first).
Result<state::VmRecord> resolve(Session& s, const std::string& ref);
// "3 minutes", "2 hours", ...
std::string human_duration(int64_t ms);

}  // namespace fcvm::cli
