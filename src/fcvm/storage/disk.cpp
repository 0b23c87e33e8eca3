#include "fcvm/storage/disk.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fcvm/util/unique_fd.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fcvm::storage {

Result<> create_qcow2_overlay(sys::CommandRunner& runner, const std::string& base,
                              const std::string& overlay) {
  auto r =
      runner.run({"qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, overlay});
  if (!r) return tl::unexpected<Error>(std::move(r.error()).wrap("create disk overlay"));
  return {};
}

namespace {
// Copies data extents only (SEEK_DATA/SEEK_HOLE), so a sparse base stays sparse.
Result<> sparse_copy(int in, int out, off_t size) {
  off_t pos = 0;
  while (pos < size) {
    off_t data = ::lseek(in, pos, SEEK_DATA);
    if (data < 0) break;  // ENXIO: only a hole remains
    off_t hole = ::lseek(in, data, SEEK_HOLE);
    if (hole < 0) hole = size;
    off_t off_in = data, off_out = data;
    while (off_in < hole) {
      ssize_t n =
          ::copy_file_range(in, &off_in, out, &off_out, static_cast<size_t>(hole - off_in), 0);
      if (n < 0) return fail_errno("copy_file_range");
      if (n == 0) break;
    }
    pos = hole;
  }
  if (::ftruncate(out, size) != 0) return fail_errno("ftruncate");
  return {};
}
}  // namespace

Result<CloneMethod> clone_file(const std::string& src, const std::string& dst, bool reflink_only) {
  UniqueFd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return fail_errno(fmt::format("open {}", src));
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) return fail_errno(fmt::format("stat {}", src));
  UniqueFd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!out) return fail_errno(fmt::format("create {}", dst));
  // FICLONE shares the extents of `in` with `out`; both are regular files on the same fs.
  if (::ioctl(out.get(), FICLONE, in.get()) == 0) return CloneMethod::kReflink;
  int e = errno;
  if (reflink_only) {
    ::unlink(dst.c_str());
    return fail_errno(fmt::format("reflink {} to {}", src, dst), e);
  }
  auto copied = sparse_copy(in.get(), out.get(), st.st_size);
  if (!copied) {
    ::unlink(dst.c_str());
    return tl::unexpected<Error>(
        std::move(copied.error()).wrap(fmt::format("copy {} to {}", src, dst)));
  }
  return CloneMethod::kCopy;
}

}  // namespace fcvm::storage
