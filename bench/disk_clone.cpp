// fcvm_bench_disk_clone: how long a VM's writable root disk takes to create, by method.
//
//   fcvm_bench_disk_clone [--runs N] DIR [BASE...]
//
// For each base image (BASE..., or, when none is given, synthetic sparse images of 512 MiB, 1 GiB
// and 2 GiB created in DIR, each with the data-to-size ratio of the real guest rootfs: ~300 MB
// of data in 2 GiB, written as 1 MiB extents spread over the file) it times, N times each:
//   clone   storage::clone_file into DIR: a reflink where the filesystem supports it, else the
//           sparse copy (the method actually used is printed)
//   qcow2   `qemu-img create -f qcow2 -F raw -b BASE` in DIR (what fcvm ran before)
//   qcow2 (in-process)   storage::write_qcow2_overlay in DIR (what fcvm does now)
// and prints one row per method and image with medians over the runs: the filesystem, method,
// image size, data in it, the time of the call as fcvm makes it (fcvm does not fsync the new
// disk), the time including fsync of the new file (what writeback costs later), and the space the
// filesystem lost to the new file. Bases come from the page cache, as a hot base image does.
// bench/disk_clone.sh runs it on the host filesystem and on a loop-mounted XFS with reflink.
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "fcvm/storage/disk.hpp"
#include "fcvm/sys/command_runner.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace {

using fcvm::Result;
constexpr int64_t k_mib = 1024 * 1024;

std::string fs_name(const std::string& dir) {
  struct statfs s {};
  if (::statfs(dir.c_str(), &s) != 0) return "?";
  switch (static_cast<uint64_t>(s.f_type)) {
    case EXT4_SUPER_MAGIC:
      return "ext4";
    case XFS_SUPER_MAGIC:
      return "xfs";
    case BTRFS_SUPER_MAGIC:
      return "btrfs";
    case TMPFS_MAGIC:
      return "tmpfs";
    default:
      return fmt::format("0x{:x}", static_cast<uint64_t>(s.f_type));
  }
}

// A sparse image of `size` bytes with 1 MiB extents of random data, about 300/2048 of it.
Result<> make_image(const std::string& path, int64_t size) {
  fcvm::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return fcvm::fail_errno("create " + path);
  std::mt19937_64 rng(42);
  std::vector<uint64_t> block(k_mib / sizeof(uint64_t));
  const int64_t stride = 7 * k_mib;  // 1 MiB of data in every 7 MiB: ~14.6%, as the rootfs
  for (int64_t off = 0; off + k_mib <= size; off += stride) {
    for (auto& w : block) w = rng();
    auto n = ::pwrite(fd.get(), block.data(), k_mib, off);
    if (n != k_mib) return fcvm::fail_errno("write " + path);
  }
  if (::ftruncate(fd.get(), size) != 0) return fcvm::fail_errno("truncate " + path);
  if (::fsync(fd.get()) != 0) return fcvm::fail_errno("fsync " + path);
  return {};
}

struct Sample {
  double ms = 0;         // the call as fcvm makes it
  double synced_ms = 0;  // the call plus fsync of the new file: the cost of making it durable
  double used_mib = 0;   // space the filesystem lost to the new file
};

double elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since)
      .count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string human(int64_t bytes) {
  if (bytes >= 1024 * k_mib && bytes % (1024 * k_mib) == 0) {
    return fmt::format("{} GiB", bytes / (1024 * k_mib));
  }
  return fmt::format("{} MiB", (bytes + k_mib / 2) / k_mib);
}

// Free bytes of the filesystem holding `dir`, after flushing it (so that freed and delayed
// allocations are settled).
Result<int64_t> free_bytes(const std::string& dir) {
  fcvm::UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd || ::syncfs(fd.get()) != 0) return fcvm::fail_errno("syncfs " + dir);
  struct statvfs s {};
  if (::fstatvfs(fd.get(), &s) != 0) return fcvm::fail_errno("statvfs " + dir);
  return static_cast<int64_t>(s.f_bfree) * static_cast<int64_t>(s.f_frsize);
}

// One timed creation of `target` by `make`.
template <typename Make>
Result<Sample> measure(const std::string& dir, const std::string& target, Make make) {
  ::unlink(target.c_str());
  auto before = free_bytes(dir);
  if (!before) return tl::unexpected<fcvm::Error>(before.error());
  Sample s;
  auto t0 = std::chrono::steady_clock::now();
  FCVM_TRY(make());
  s.ms = elapsed_ms(t0);
  fcvm::UniqueFd fd(::open(target.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) != 0) return fcvm::fail_errno("fsync " + target);
  s.synced_ms = elapsed_ms(t0);
  auto after = free_bytes(dir);
  if (!after) return tl::unexpected<fcvm::Error>(after.error());
  s.used_mib = static_cast<double>(*before - *after) / k_mib;
  return s;
}

void print_row(const std::string& fs, const std::string& method, const std::string& size,
               const std::string& data, const std::vector<Sample>& samples) {
  std::vector<double> ms, synced, used;
  for (const auto& s : samples) {
    ms.push_back(s.ms);
    synced.push_back(s.synced_ms);
    used.push_back(s.used_mib);
  }
  std::printf("%-6s %-26s %-8s %-8s %9.3f %10.3f %9.1f\n", fs.c_str(), method.c_str(), size.c_str(),
              data.c_str(), median(ms), median(synced), median(used));
  std::fflush(stdout);
}

Result<> bench(const std::string& dir, const std::string& base, int runs) {
  struct stat st {};
  if (::stat(base.c_str(), &st) != 0) return fcvm::fail_errno("stat " + base);
  auto size = human(st.st_size);
  auto data = human(static_cast<int64_t>(st.st_blocks) * 512);
  auto fs = fs_name(dir);
  auto target = dir + "/bench-target";

  std::vector<Sample> clones, overlays, in_process;
  auto method = fcvm::storage::CloneMethod::kCopy;
  for (int i = 0; i < runs; ++i) {
    auto s = measure(dir, target, [&]() -> Result<> {
      auto used = fcvm::storage::clone_file(base, target);
      if (!used) return tl::unexpected<fcvm::Error>(used.error());
      method = *used;
      return {};
    });
    if (!s) return tl::unexpected<fcvm::Error>(s.error());
    clones.push_back(*s);
  }
  for (int i = 0; i < runs; ++i) {
    auto s = measure(dir, target, [&]() -> Result<> {
      auto r = fcvm::sys::default_runner().run(
          {"qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, target});
      if (!r) return tl::unexpected<fcvm::Error>(r.error());
      return {};
    });
    if (!s) return tl::unexpected<fcvm::Error>(s.error());
    overlays.push_back(*s);
  }
  for (int i = 0; i < runs; ++i) {
    auto s = measure(dir, target, [&] {
      return fcvm::storage::write_qcow2_overlay(base, fcvm::storage::BackingFormat::kRaw,
                                                static_cast<uint64_t>(st.st_size), target);
    });
    if (!s) return tl::unexpected<fcvm::Error>(s.error());
    in_process.push_back(*s);
  }
  ::unlink(target.c_str());
  auto name = method == fcvm::storage::CloneMethod::kReflink ? "clone: reflink" : "clone: copy";
  print_row(fs, name, size, data, clones);
  print_row(fs, "qcow2 overlay (qemu-img)", size, data, overlays);
  print_row(fs, "qcow2 overlay (in-process)", size, data, in_process);
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 5;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() >= 2 && args[0] == "--runs") {
    auto n = fcvm::parse_int(args[1], 1, 1000);
    if (!n) {
      std::fprintf(stderr, "fcvm_bench_disk_clone: --runs: expected 1-1000\n");
      return 2;
    }
    runs = static_cast<int>(*n);
    args.erase(args.begin(), args.begin() + 2);
  }
  if (args.empty()) {
    std::fprintf(stderr, "usage: fcvm_bench_disk_clone [--runs N] DIR [BASE...]\n");
    return 2;
  }
  const std::string dir = args[0];
  std::vector<std::string> bases(args.begin() + 1, args.end());
  std::vector<std::string> made;
  if (bases.empty()) {
    for (int64_t size : {512 * k_mib, 1024 * k_mib, 2048 * k_mib}) {
      auto path = fmt::format("{}/base-{}m.img", dir, size / k_mib);
      if (auto r = make_image(path, size); !r) {
        std::fprintf(stderr, "fcvm_bench_disk_clone: %s\n", r.error().to_string().c_str());
        return 1;
      }
      made.push_back(path);
    }
    bases = made;
  }
  std::printf("%-6s %-26s %-8s %-8s %9s %10s %9s\n", "fs", "method", "size", "data", "ms",
              "+fsync ms", "used MiB");
  int rc = 0;
  for (const auto& base : bases) {
    if (auto r = bench(dir, base, runs); !r) {
      std::fprintf(stderr, "fcvm_bench_disk_clone: %s: %s\n", base.c_str(),
                   r.error().to_string().c_str());
      rc = 1;
      break;
    }
  }
  for (const auto& m : made) ::unlink(m.c_str());
  return rc;
}
