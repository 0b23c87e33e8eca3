#pragma once
// What the subcommands share: the context and the store, and name resolution.
#include <optional>
#include <string>
#include <vector>

#include "fcvm/config/config.hpp"
#include "fcvm/net/publish.hpp"
#include "fcvm/state/vm_store.hpp"
#include "fcvm/storage/volume.hpp"
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
// "1.5 GiB", "230 MiB", ...
std::string human_size(int64_t bytes);

// Validators shared by run and clone; each error is kInvalidInput and names the value.
Result<std::vector<net::PortMapping>> parse_ports(const std::vector<std::string>& publish);
Result<> validate_network(const std::string& mode);
Result<> validate_gate(const std::string& spec);  // empty: no gate
// A --map mode this host and network mode can serve.
Result<> check_volume_mode(const storage::VolumeMap& map, const std::string& network);
// The published ports are free for us, and not held by a privileged VM's DNAT rules either (they
// take a port without a socket).
Result<> check_ports_available(const std::vector<net::PortMapping>& ports);
// Spawns the monitor of a new record and follows it: -d waits until it is ready and prints the
// id; otherwise attaches (output, exit code). Returns the exit code for the command.
int launch_vm(Session& s, const state::VmRecord& rec, bool detach, const std::string& verb);
// No snapshot (complete or being written) has this name.
Result<> check_snapshot_name_free(Session& s, const std::string& name);

}  // namespace fcvm::cli
