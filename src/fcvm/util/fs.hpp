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
// Copies src to a new file dst (O_EXCL, `mode`) sharing its blocks where the filesystem can
// (FICLONE: XFS with reflink, btrfs), else copying only its data extents (SEEK_DATA/SEEK_HOLE +
// copy_file_range), so holes stay holes. reflink_only refuses the copy. dst is removed on
// failure. Returns true when the blocks are shared (a reflink).
Result<bool> clone_file_data(const std::string& src, const std::string& dst,
                             bool reflink_only = false, int mode = 0644);
// The same from an open file (read from offset 0 with pread-style offsets; the fd's own offset
// is not used).
Result<bool> clone_fd_data(int src_fd, const std::string& dst, bool reflink_only = false,
                           int mode = 0644);

}  // namespace fcvm
