// storage::write_qcow2_overlay, checked by the real QEMU tools: qemu-img check finds no errors or
// leaks, qemu-img info reads back size and backing, and qemu-io writes through the overlay while
// unwritten clusters still read the backing's bytes. Skipped when qemu-img (or qemu-io) is absent.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fcvm/storage/disk.hpp"
#include "fcvm/sys/command_runner.hpp"
#include "fcvm/util/child_process.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::storage {
namespace {

constexpr uint64_t k_mib = 1024 * 1024;
constexpr uint64_t k_gib = 1024 * k_mib;
constexpr uint64_t k_tib = 1024 * k_gib;
constexpr uint64_t k_cluster = 64 * 1024;

class Qcow2Overlay : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!find_executable("qemu-img")) GTEST_SKIP() << "qemu-img is not installed (qemu-utils)";
    char templ[] = "/var/tmp/fcvm-qcow2-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    m_dir = templ;
  }
  void TearDown() override {
    if (!m_dir.empty()) (void)remove_all(m_dir);
  }

  // A sparse raw image of `size` bytes whose 64 KiB at 1 MiB hold the byte 0xcd.
  std::string make_raw(const std::string& name, uint64_t size) {
    auto path = m_dir + "/" + name;
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    EXPECT_TRUE(fd) << path;
    std::vector<char> block(k_cluster, static_cast<char>(0xcd));
    EXPECT_EQ(::pwrite(fd.get(), block.data(), block.size(), k_mib),
              static_cast<ssize_t>(block.size()));
    EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
    return path;
  }

  std::string make_qcow2(const std::string& name, uint64_t size) {
    auto path = m_dir + "/" + name;
    auto r = run_capture({"qemu-img", "create", "-q", "-f", "qcow2", path, std::to_string(size)});
    EXPECT_TRUE(r && r->status.exited && r->status.code == 0)
        << (r ? r->err : r.error().to_string());
    return path;
  }

  std::string m_dir;
};

// Runs a QEMU tool; its stdout, or a test failure with its stderr.
std::string run_tool(const std::vector<std::string>& argv) {
  auto r = run_capture(argv);
  if (!r) {
    ADD_FAILURE() << argv[0] << ": " << r.error().to_string();
    return "";
  }
  EXPECT_TRUE(r->status.exited && r->status.code == 0)
      << argv[0] << " " << argv[1] << " " << argv.back() << ": " << r->status.describe() << "\n"
      << r->out << r->err;
  return r->out;
}

// qemu-img check exits 0 only without corruptions or leaks; the JSON says so explicitly too.
void expect_check_clean(const std::string& image) {
  auto out = run_tool({"qemu-img", "check", "--output=json", image});
  auto j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(j.is_object()) << out;
  EXPECT_EQ(j.value("check-errors", -1), 0) << out;
  EXPECT_EQ(j.value("corruptions", 0), 0) << out;
  EXPECT_EQ(j.value("leaks", 0), 0) << out;
}

nlohmann::json info_of(const std::string& image) {
  auto out = run_tool({"qemu-img", "info", "--output=json", image});
  auto j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(j.is_object()) << out;
  return j;
}

off_t size_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_size;
}

void expect_valid_overlay(const std::string& overlay, const std::string& backing,
                          const std::string& format, uint64_t virtual_size) {
  SCOPED_TRACE(overlay);
  expect_check_clean(overlay);
  auto j = info_of(overlay);
  EXPECT_EQ(j.value("format", ""), "qcow2");
  EXPECT_EQ(j.value("virtual-size", uint64_t{0}), virtual_size);
  EXPECT_EQ(j.value("cluster-size", uint64_t{0}), k_cluster);
  EXPECT_EQ(j.value("backing-filename", ""), backing);
  EXPECT_EQ(j.value("full-backing-filename", ""), backing);
  EXPECT_EQ(j.value("backing-filename-format", ""), format);
  EXPECT_FALSE(j.value("dirty-flag", true));
  EXPECT_EQ(size_of(overlay) % static_cast<off_t>(k_cluster), 0);
  auto size = disk_virtual_size(overlay);
  ASSERT_TRUE(size) << size.error().to_string();
  EXPECT_EQ(*size, virtual_size);
}

TEST_F(Qcow2Overlay, ValidOverRawAndQcow2BackingsOfManySizes) {
  const auto raw = make_raw("base.raw", 2 * k_gib);
  const auto qcow2 = make_qcow2("base.qcow2", 2 * k_gib);
  struct Backing {
    std::string path;
    BackingFormat format;
    std::string name;
  };
  // 16 TiB needs an L1 table of 32768 entries: 4 clusters.
  for (const auto& b :
       {Backing{raw, BackingFormat::kRaw, "raw"}, Backing{qcow2, BackingFormat::kQcow2, "qcow2"}}) {
    for (uint64_t size : {k_mib, 2 * k_gib, k_tib, 16 * k_tib}) {
      auto overlay = m_dir + "/overlay-" + b.name + "-" + std::to_string(size) + ".qcow2";
      auto r = write_qcow2_overlay(b.path, b.format, size, overlay);
      ASSERT_TRUE(r) << r.error().to_string();
      expect_valid_overlay(overlay, b.path, b.name, size);
    }
  }
  // Header, refcount table, refcount block and ceil(32768 * 8 / 64 KiB) = 4 L1 clusters.
  EXPECT_EQ(size_of(m_dir + "/overlay-raw-" + std::to_string(16 * k_tib) + ".qcow2"),
            static_cast<off_t>(7 * k_cluster));
}

TEST_F(Qcow2Overlay, ZeroAndUnalignedSizes) {
  const auto raw = make_raw("base.raw", 2 * k_mib);
  ASSERT_TRUE(write_qcow2_overlay(raw, BackingFormat::kRaw, 0, m_dir + "/zero.qcow2"));
  expect_valid_overlay(m_dir + "/zero.qcow2", raw, "raw", 0);
  // Rounded up to whole sectors, as QEMU sees a raw file of that length.
  ASSERT_TRUE(write_qcow2_overlay(raw, BackingFormat::kRaw, 1000, m_dir + "/odd.qcow2"));
  expect_valid_overlay(m_dir + "/odd.qcow2", raw, "raw", 1024);
}

TEST_F(Qcow2Overlay, DiskVirtualSize) {
  auto raw = disk_virtual_size(make_raw("base.raw", 2 * k_gib));
  ASSERT_TRUE(raw) << raw.error().to_string();
  EXPECT_EQ(*raw, 2 * k_gib);
  auto qcow2 = disk_virtual_size(make_qcow2("base.qcow2", 3 * k_gib));
  ASSERT_TRUE(qcow2) << qcow2.error().to_string();
  EXPECT_EQ(*qcow2, 3 * k_gib);
  auto missing = disk_virtual_size(m_dir + "/missing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().sys_errno(), ENOENT);
}

TEST_F(Qcow2Overlay, CreateQcow2OverlayUsesTheRawBaseSize) {
  const auto raw = make_raw("base.raw", 2 * k_gib);
  const auto overlay = m_dir + "/root.qcow2";
  auto r = create_qcow2_overlay(sys::default_runner(), raw, overlay);
  ASSERT_TRUE(r) << r.error().to_string();
  expect_valid_overlay(overlay, raw, "raw", 2 * k_gib);
  struct stat st {};
  ASSERT_EQ(::stat(overlay.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(Qcow2Overlay, WritesGoToTheOverlayAndReadsFallThroughToTheBacking) {
  if (!find_executable("qemu-io")) GTEST_SKIP() << "qemu-io is not installed (qemu-utils)";
  const auto raw = make_raw("base.raw", 2 * k_gib);
  const auto overlay = m_dir + "/overlay.qcow2";
  ASSERT_TRUE(write_qcow2_overlay(raw, BackingFormat::kRaw, 2 * k_gib, overlay));

  run_tool({"qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 64k", overlay});
  // qemu-io exits non-zero when a pattern does not match.
  run_tool({"qemu-io", "-f", "qcow2", "-c", "read -P 0xab 0 64k", overlay});
  run_tool({"qemu-io", "-f", "qcow2", "-c", "read -P 0xcd 1M 64k", overlay});
  run_tool({"qemu-io", "-f", "qcow2", "-c", "read -P 0 2M 64k", overlay});
  expect_check_clean(overlay);
  // The write did not reach the backing.
  run_tool({"qemu-io", "-f", "raw", "-r", "-c", "read -P 0 0 64k", raw});
}

TEST_F(Qcow2Overlay, NeverOverwritesAnExistingFile) {
  const auto raw = make_raw("base.raw", 2 * k_mib);
  const auto overlay = m_dir + "/existing.qcow2";
  ASSERT_TRUE(write_file_atomic(overlay, "keep me"));
  auto r = write_qcow2_overlay(raw, BackingFormat::kRaw, 2 * k_mib, overlay);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().sys_errno(), EEXIST);
  EXPECT_EQ(read_file(overlay).value_or(""), "keep me");
}

TEST_F(Qcow2Overlay, BackingNameLimit) {
  // 1023 bytes is the longest name qcow2 allows; the backing need not exist for info.
  std::string longest = m_dir + "/" + std::string(1023 - m_dir.size() - 1, 'a');
  ASSERT_EQ(longest.size(), 1023u);
  const auto ok = m_dir + "/longest.qcow2";
  auto r = write_qcow2_overlay(longest, BackingFormat::kRaw, 2 * k_mib, ok);
  ASSERT_TRUE(r) << r.error().to_string();
  auto info = run_capture({"qemu-img", "info", "--output=json", "-U", ok});
  ASSERT_TRUE(info);
  EXPECT_NE(info->out.find(longest), std::string::npos) << info->out << info->err;

  const auto bad = m_dir + "/too-long.qcow2";
  r = write_qcow2_overlay(longest + "b", BackingFormat::kRaw, 2 * k_mib, bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput) << r.error().to_string();
  EXPECT_FALSE(path_exists(bad));
}

TEST_F(Qcow2Overlay, RejectsSizesQemuCannotOpen) {
  const auto overlay = m_dir + "/huge.qcow2";
  auto r = write_qcow2_overlay(m_dir + "/base.raw", BackingFormat::kRaw, UINT64_MAX, overlay);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
  EXPECT_FALSE(path_exists(overlay));
}

}  // namespace
}  // namespace fcvm::storage
