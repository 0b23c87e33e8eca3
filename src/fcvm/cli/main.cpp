#include "fcvm/cli/main.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <string_view>
#include <vector>

#include "fcvm/cli/man.hpp"
#include "fcvm/cli/report.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/vm/timings.hpp"

namespace fcvm::cli {

int main(int argc, char** argv) {
  vm::mark_process_start();
  log::init_from_env();
  CLI::App app{"fcvm: run OCI containers in their own microVMs (Firecracker or QEMU)", "fcvm"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("fcvm ") + FCVM_VERSION);
  app.footer(
      "Exit codes: 0 success; 1 failure; 2 bad usage or input. `fcvm run` exits with the "
      "container's exit code.\nEnvironment: FCVM_DATA_DIR (state and VMs), FCVM_GUEST_DIR (guest "
      "kernel and rootfs), FCVM_LOG=debug|info|warn (debug log on stderr).");
  std::string level;
  app.add_option("--log-level", level, "Debug log level: trace, debug, info, warn, error, off")
      ->check([](const std::string& v) {
        log::Level l;
        return log::parse_level(v, l) ? std::string() : "expected trace|debug|info|warn|error|off";
      });
  std::vector<Command> commands;
  for (auto add : {add_run,    add_ls,      add_inspect, add_logs,     add_exec,   add_stop,
                   add_start,  add_restart, add_pause,   add_unpause,  add_kill,   add_wait,
                   add_rm,     add_rename,  add_port,    add_snapshot, add_clone,  add_volume,
                   add_events, add_names,   add_pull,    add_images,   add_rmi,    add_image,
                   add_system, add_stats,   add_top,     add_cp,       add_attach, add_serve}) {
    commands.push_back(add(app));
  }
  // The build writes the manual pages from these definitions: fcvm __man DIR.
  if (argc == 3 && std::string_view(argv[1]) == "__man") return write_man_pages(app, argv[2]);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // "A subcommand is required" hides a mistyped command: name it.
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg.empty() || arg[0] == '-') continue;
      bool known = false;
      for (const auto* sub : app.get_subcommands({})) known = known || sub->get_name() == arg;
      if (!known) {
        report_usage_error(fmt::format("unknown command \"{}\"", arg));
        return k_exit_usage;
      }
      break;
    }
    report_usage_error(e.what());
    return k_exit_usage;
  }
  log::Level l;
  if (!level.empty() && log::parse_level(level, l)) log::set_level(l);
  for (auto& c : commands) {
    if (c.app->parsed()) {
      try {
        return c.run();
      } catch (const std::exception& e) {
        // Our code does not throw; this is the one last catch for a library that did.
        report_error(Error(ErrorCode::kInternal, e.what()));
        return k_exit_failure;
      }
    }
  }
  return k_exit_usage;
}

}  // namespace fcvm::cli
