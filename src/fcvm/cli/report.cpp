#include "fcvm/cli/report.hpp"

#include <fmt/format.h>

#include <cstdio>

#include "fcvm/cli/main.hpp"

namespace fcvm::cli {

int report_error(const Error& error) {
  fmt::print(stderr, "fcvm: error: {}\n", error.to_string());
  switch (error.code()) {
    case ErrorCode::kInvalidInput:
    case ErrorCode::kNotFound:
    case ErrorCode::kAlreadyExists:
      return k_exit_usage;
    default:
      return k_exit_failure;
  }
}

void report_usage_error(std::string_view message) {
  fmt::print(stderr, "fcvm: error: {}\nRun 'fcvm --help' or 'fcvm COMMAND --help' for usage.\n",
             message);
}

}  // namespace fcvm::cli
