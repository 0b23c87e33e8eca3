#include "fcvm/storage/disk.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <vector>

#include "fcvm/util/fs.hpp"
#include "fcvm/util/unique_fd.hpp"
#include "fcvm/util/unix_socket.hpp"

namespace fcvm::storage {

namespace {

// qcow2 v3 as laid out in QEMU's docs/interop/qcow2.txt. All numbers are big-endian.
constexpr uint32_t k_qcow2_magic = 0x514649fb;  // "QFI\xfb"
constexpr uint32_t k_cluster_bits = 16;
constexpr uint64_t k_cluster = uint64_t{1} << k_cluster_bits;
constexpr uint32_t k_refcount_order = 4;  // 16-bit refcounts, what qemu-img creates
// v3 header through compression_type (byte 104, 0 = zlib), padded to a multiple of 8 as the spec
// requires; 112 is also what current qemu-img writes.
constexpr uint32_t k_header_length = 112;
constexpr uint32_t k_ext_backing_format = 0xE2792ACA;
constexpr uint32_t k_ext_end = 0;
// The spec caps backing_file_size at 1023 and QEMU refuses to open an image above it. Far below
// one cluster, so the name always fits in the first cluster behind header and extensions.
constexpr size_t k_max_backing_name = 1023;
// One L1 entry points at one L2 table, which maps cluster/8 guest clusters.
constexpr uint64_t k_bytes_per_l1_entry = k_cluster * (k_cluster / 8);
// QEMU refuses to open an image whose L1 table exceeds 32 MiB (2 PiB of virtual disk here).
constexpr uint64_t k_max_l1_entries = (uint64_t{32} << 20) / 8;
// Fixed layout: cluster 0 header, 1 refcount table, 2 the one refcount block, 3... the L1 table.
constexpr uint64_t k_refcount_table_cluster = 1;
constexpr uint64_t k_refcount_block_cluster = 2;
constexpr uint64_t k_l1_cluster = 3;
// One refcount block covers 32768 clusters: all metadata of even the largest L1 table, so a
// single block always covers the new file.
constexpr uint64_t k_refcounts_per_block = k_cluster * 8 / (1u << k_refcount_order);
static_assert(k_l1_cluster + k_max_l1_entries * 8 / k_cluster <= k_refcounts_per_block);
// Header, format extension ("qcow2" padded to 8), end marker and the longest name: one cluster.
static_assert(k_header_length + 16 + 8 + k_max_backing_name <= k_cluster);

void put_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void put_be32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
void put_be64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
}
uint32_t get_be32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | p[i];
  return v;
}
uint64_t get_be64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

Result<> pwrite_all(int fd, const std::vector<uint8_t>& data, uint64_t offset) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n =
        ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("write");
    done += static_cast<size_t>(n);
  }
  return {};
}

// Writes the metadata into the freshly created, empty `fd`. Only the non-zero bytes are written:
// the rest of the file (padding, the all-zero L1 table) is a hole that reads as zeros.
Result<> fill_overlay(int fd, const std::string& backing, std::string_view format, uint64_t size,
                      uint64_t l1_entries, uint64_t clusters) {
  const size_t format_padded = (format.size() + 7) / 8 * 8;
  const uint64_t name_offset = k_header_length + 8 + format_padded + 8;
  std::vector<uint8_t> head(name_offset + backing.size(), 0);
  uint8_t* h = head.data();
  put_be32(h + 0, k_qcow2_magic);
  put_be32(h + 4, 3);
  put_be64(h + 8, name_offset);
  put_be32(h + 16, static_cast<uint32_t>(backing.size()));
  put_be32(h + 20, k_cluster_bits);
  put_be64(h + 24, size);
  put_be32(h + 36, static_cast<uint32_t>(l1_entries));
  // No L1 table for a zero-sized disk: offset 0, as qemu-img writes it.
  put_be64(h + 40, l1_entries > 0 ? k_l1_cluster * k_cluster : 0);
  put_be64(h + 48, k_refcount_table_cluster * k_cluster);
  put_be32(h + 56, 1);  // refcount table clusters
  put_be32(h + 96, k_refcount_order);
  put_be32(h + 100, k_header_length);
  // The backing format is recorded so that QEMU never probes it: probing a raw base whose guest
  // wrote a qcow2 header into it would let the guest pick what the host opens.
  uint8_t* ext = h + k_header_length;
  put_be32(ext, k_ext_backing_format);
  put_be32(ext + 4, static_cast<uint32_t>(format.size()));
  std::copy(format.begin(), format.end(), ext + 8);
  put_be32(ext + 8 + format_padded, k_ext_end);
  std::copy(backing.begin(), backing.end(), h + name_offset);

  std::vector<uint8_t> refcount_table(8);
  put_be64(refcount_table.data(), k_refcount_block_cluster * k_cluster);
  // Every cluster of the new file is metadata in use exactly once.
  std::vector<uint8_t> refcount_block(clusters * 2);
  for (uint64_t i = 0; i < clusters; ++i) put_be16(refcount_block.data() + 2 * i, 1);

  if (::ftruncate(fd, static_cast<off_t>(clusters * k_cluster)) != 0) {
    return fail_errno("truncate");
  }
  FCVM_TRY(pwrite_all(fd, head, 0));
  FCVM_TRY(pwrite_all(fd, refcount_table, k_refcount_table_cluster * k_cluster));
  FCVM_TRY(pwrite_all(fd, refcount_block, k_refcount_block_cluster * k_cluster));
  return {};
}

}  // namespace

Result<> write_qcow2_overlay(const std::string& backing, BackingFormat backing_format,
                             uint64_t virtual_size, const std::string& overlay) {
  const auto context = fmt::format("write qcow2 overlay {}", overlay);
  if (backing.empty() || backing.find('\0') != std::string::npos) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("{}: backing file name is empty or contains NUL", context));
  }
  if (backing.size() > k_max_backing_name) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("{}: backing file name is {} bytes long, qcow2 allows at most {}",
                            context, backing.size(), k_max_backing_name));
  }
  if (virtual_size > k_max_l1_entries * k_bytes_per_l1_entry) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("{}: virtual size {} is above the {} bytes QEMU can open", context,
                            virtual_size, k_max_l1_entries * k_bytes_per_l1_entry));
  }
  // QEMU sees a raw file's size rounded up to whole 512-byte sectors; so must the overlay, or the
  // tail of the backing would be cut off.
  const uint64_t size = (virtual_size + 511) / 512 * 512;
  const uint64_t l1_entries = (size + k_bytes_per_l1_entry - 1) / k_bytes_per_l1_entry;
  const uint64_t l1_clusters = (l1_entries * 8 + k_cluster - 1) / k_cluster;
  const std::string_view format = backing_format == BackingFormat::kRaw ? "raw" : "qcow2";

  UniqueFd fd(::open(overlay.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return fail_errno(fmt::format("{}: create", context));
  auto filled =
      fill_overlay(fd.get(), backing, format, size, l1_entries, k_l1_cluster + l1_clusters);
  if (!filled) {
    ::unlink(overlay.c_str());
    return tl::unexpected<Error>(std::move(filled.error()).wrap(context));
  }
  return {};
}

Result<uint64_t> disk_virtual_size(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno(fmt::format("open {}", path));
  uint8_t header[32] = {};
  ssize_t n = ::pread(fd.get(), header, sizeof header, 0);
  if (n < 0) return fail_errno(fmt::format("read {}", path));
  // Probing by magic is fine for the caller's own images; a guest-writable raw disk that starts
  // with the qcow2 magic would be misread, which is why overlays name their backing format.
  if (static_cast<size_t>(n) == sizeof header && get_be32(header) == k_qcow2_magic) {
    uint32_t version = get_be32(header + 4);
    if (version != 2 && version != 3) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("{}: unsupported qcow2 version {}", path, version));
    }
    return get_be64(header + 24);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail_errno(fmt::format("stat {}", path));
  return static_cast<uint64_t>(st.st_size);
}

Result<> create_qcow2_overlay([[maybe_unused]] sys::CommandRunner& runner, const std::string& base,
                              const std::string& overlay) {
  // The base is raw (these overlays always said -F raw): its virtual size is its length, even if
  // its first bytes happen to look like a qcow2 header.
  struct stat st {};
  if (::stat(base.c_str(), &st) != 0) {
    return fail_errno(fmt::format("create disk overlay: stat {}", base));
  }
  return with_context(
      write_qcow2_overlay(base, BackingFormat::kRaw, static_cast<uint64_t>(st.st_size), overlay),
      "create disk overlay");
}

Result<CloneMethod> clone_file(const std::string& src, const std::string& dst, bool reflink_only) {
  auto shared = clone_file_data(src, dst, reflink_only);
  if (!shared) return tl::unexpected<Error>(shared.error());
  return *shared ? CloneMethod::kReflink : CloneMethod::kCopy;
}

}  // namespace fcvm::storage
