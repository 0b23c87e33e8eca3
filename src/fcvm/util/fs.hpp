#pragma once
#include <string>
#include <string_view>

#include "fcvm/util/result.hpp"

namespace fcvm {

// Writes contents to path atomically: temp file in the same directory, fsync, rename.
Result<> write_file_atomic(const std::string& path, std::string_view contents, int mode = 0644);
Result<std::string> read_file(const std::string& path);
// mkdir -p with mode for the created directories.
Result<> make_dirs(const std::string& path, int mode = 0755);
// rm -rf; a missing path is fine.
Result<> remove_all(const std::string& path);
bool path_exists(const std::string& path);

}  // namespace fcvm
