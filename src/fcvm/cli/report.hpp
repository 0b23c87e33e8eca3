#pragma once
#include <string_view>

#include "fcvm/util/result.hpp"

namespace fcvm::cli {

// The one-line user diagnostic: "fcvm: error: ...". Returns the exit code for the error: 2 for
// bad input, 1 otherwise.
int report_error(const Error& error);
void report_usage_error(std::string_view message);

}  // namespace fcvm::cli
