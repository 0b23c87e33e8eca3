#pragma once
#include <CLI/CLI.hpp>

namespace fcvm::cli {

// Exit codes of every command (documented in --help).
inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_failure = 1;
inline constexpr int k_exit_usage = 2;

int main(int argc, char** argv);

// Each subcommand registers itself on the app and returns the function that runs it after
// parsing (the returned function yields the process exit code).
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};
Command add_run(CLI::App& app);
Command add_ls(CLI::App& app);
Command add_inspect(CLI::App& app);
Command add_logs(CLI::App& app);
Command add_exec(CLI::App& app);
Command add_stop(CLI::App& app);
Command add_start(CLI::App& app);
Command add_rm(CLI::App& app);
Command add_snapshot(CLI::App& app);
Command add_clone(CLI::App& app);
Command add_volume(CLI::App& app);
Command add_events(CLI::App& app);
Command add_names(CLI::App& app);
Command add_pull(CLI::App& app);
Command add_images(CLI::App& app);
Command add_rmi(CLI::App& app);
Command add_image(CLI::App& app);
Command add_restart(CLI::App& app);
Command add_kill(CLI::App& app);
Command add_wait(CLI::App& app);
Command add_rename(CLI::App& app);
Command add_port(CLI::App& app);
Command add_pause(CLI::App& app);
Command add_unpause(CLI::App& app);
Command add_system(CLI::App& app);
Command add_stats(CLI::App& app);
Command add_top(CLI::App& app);
Command add_cp(CLI::App& app);
Command add_attach(CLI::App& app);
Command add_serve(CLI::App& app);

}  // namespace fcvm::cli
