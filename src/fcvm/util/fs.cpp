#include "fcvm/util/fs.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "fcvm/util/unique_fd.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fcvm {

Result<> write_file_atomic(const std::string& path, std::string_view contents, int mode) {
  auto tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd) return fail_errno(fmt::format("create {}", tmp));
  auto w = write_all(fd.get(), contents);
  if (!w || ::fsync(fd.get()) != 0) {
    ::unlink(tmp.c_str());
    return fail_errno(fmt::format("write {}", tmp));
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return fail_errno(fmt::format("rename {} to {}", tmp, path), e);
  }
  return {};
}

Result<std::string> read_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno(fmt::format("open {}", path));
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno(fmt::format("read {}", path));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<> make_dirs(const std::string& path, int mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return fail_errno(fmt::format("create directory {}", path), ec.value());
  ::chmod(path.c_str(), static_cast<mode_t>(mode));
  return {};
}

Result<> remove_all(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return fail_errno(fmt::format("remove {}", path), ec.value());
  return {};
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

namespace {
// Copies data extents only (SEEK_DATA/SEEK_HOLE), so a sparse file stays sparse.
Result<> sparse_copy(int in, int out, off_t size) {
  off_t pos = 0;
  bool use_copy_range = true;
  while (pos < size) {
    off_t data = ::lseek(in, pos, SEEK_DATA);
    if (data < 0) break;  // ENXIO: only a hole remains
    off_t hole = ::lseek(in, data, SEEK_HOLE);
    if (hole < 0) hole = size;
    off_t off_in = data, off_out = data;
    while (off_in < hole) {
      ssize_t n = -1;
      if (use_copy_range) {
        n = ::copy_file_range(in, &off_in, out, &off_out, static_cast<size_t>(hole - off_in), 0);
        // Across filesystems (EXDEV) or where unsupported: plain reads and writes instead.
        if (n < 0 &&
            (errno == EXDEV || errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL)) {
          use_copy_range = false;
          continue;
        }
        if (n < 0) return fail_errno("copy_file_range");
      } else {
        char buf[1 << 16];
        auto want = std::min<off_t>(hole - off_in, static_cast<off_t>(sizeof buf));
        n = ::pread(in, buf, static_cast<size_t>(want), off_in);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail_errno("read");
        for (ssize_t done = 0; done < n;) {
          ssize_t w = ::pwrite(out, buf + done, static_cast<size_t>(n - done), off_out + done);
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) return fail_errno("write");
          done += w;
        }
        off_in += n;
        off_out += n;
      }
      if (n == 0) break;
    }
    pos = hole;
  }
  if (::ftruncate(out, size) != 0) return fail_errno("ftruncate");
  return {};
}
}  // namespace

Result<bool> clone_file_data(const std::string& src, const std::string& dst, bool reflink_only,
                             int mode) {
  UniqueFd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return fail_errno(fmt::format("open {}", src));
  auto r = clone_fd_data(in.get(), dst, reflink_only, mode);
  if (!r) return tl::unexpected<Error>(std::move(r.error()).wrap(src));
  return r;
}

Result<bool> clone_fd_data(int in, const std::string& dst, bool reflink_only, int mode) {
  struct stat st {};
  if (::fstat(in, &st) != 0) return fail_errno("stat");
  UniqueFd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!out) return fail_errno(fmt::format("create {}", dst));
  // FICLONE shares the extents of `in` with `out`; both are regular files on the same fs.
  if (::ioctl(out.get(), FICLONE, in) == 0) return true;
  int e = errno;
  if (reflink_only) {
    ::unlink(dst.c_str());
    return fail_errno(fmt::format("reflink to {}", dst), e);
  }
  auto copied = sparse_copy(in, out.get(), st.st_size);
  if (!copied) {
    ::unlink(dst.c_str());
    return tl::unexpected<Error>(std::move(copied.error()).wrap(fmt::format("copy to {}", dst)));
  }
  return false;
}

}  // namespace fcvm
