#pragma once
// Manual pages from the command definitions themselves (the ones --help prints): fcvm.1 and one
// fcvm-COMMAND.1 per visible command, nested commands as sections of their parent's page.
// `fcvm __man DIR` writes them; the build runs it (DESIGN.md: why not help2man).
#include <CLI/CLI.hpp>
#include <string>

namespace fcvm::cli {

int write_man_pages(const CLI::App& app, const std::string& dir);

}  // namespace fcvm::cli
