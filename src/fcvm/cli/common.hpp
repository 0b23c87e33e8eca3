#pragma once
// What the subcommands share: the context and the store, and name resolution.
#include <termios.h>

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/config/config.hpp"
#include "fcvm/image/store.hpp"
#include "fcvm/state/vm_store.hpp"
#include "fcvm/vm/attach.hpp"
#include "fcvm/vm/context.hpp"
#include "fcvm/vm/validate.hpp"

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

// Progress of an image pull on a terminal, prefixed with `what`; nothing when stderr is a pipe.
image::Progress pull_progress(const std::string& what);

// Puts the terminal on fd 0 in raw mode (a TTY exec or run -t) and restores it on destruction,
// on every way out of the scope that holds it.
class RawTerminal {
 public:
  RawTerminal();
  ~RawTerminal();
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  termios m_saved{};
  bool m_active = false;
};

// The size of the terminal on fd 1 (none when it is not a terminal).
std::optional<vm::WindowSize> terminal_size();

// The configuration file's defaults for `run`.
vm::RunDefaults run_defaults(const config::Config& config);
// How launch_vm follows the monitor it spawns.
struct Launch {
  bool detach = false;  // -d: wait until ready and print the id
  std::string verb;     // for messages ("run", "clone")
  std::string timings_file{};
  std::string detach_keys = vm::k_default_detach_keys;  // as the user typed them (validated)
};
// Spawns the monitor of a new record and follows it: -d waits until it is ready and prints the
// id; otherwise attaches (output, exit code). Returns the exit code for the command.
int launch_vm(Session& s, const state::VmRecord& rec, const Launch& how);
// --detach-keys KEYS for a command that attaches; `when` begins the help ("With -it").
void add_detach_keys_option(CLI::App* cmd, std::string& keys, const std::string& when);
// Attaches this terminal to a VM's container through its monitor (ready_fd: the monitor this
// command started, or -1): raw mode and detach keys when the container has a terminal and stdin,
// stdin only when it was started with -i and `with_stdin`. Tells of a detach on stderr.
Result<vm::AttachEnd> attach_terminal(const state::VmRecord& rec, int ready_fd,
                                      const std::string& detach_keys, bool with_stdin = true);
}  // namespace fcvm::cli
