// storage::clone_file: the copy fallback keeps content and holes; reflink_only fails cleanly where
// the filesystem cannot share extents; the destination is never overwritten.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "fcvm/storage/disk.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::storage {
namespace {

constexpr off_t k_mib = 1024 * 1024;

class DiskClone : public ::testing::Test {
 protected:
  void SetUp() override {
    // Under /var/tmp: a disk-backed filesystem on most hosts (/tmp may be tmpfs).
    char templ[] = "/var/tmp/fcvm-disk-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    m_dir = templ;
  }
  void TearDown() override { (void)remove_all(m_dir); }

  // A 64 MiB sparse file with two 1 MiB data extents (at 0 and at 40 MiB) and a hole at the end.
  std::string make_sparse(const std::string& name) {
    auto path = m_dir + "/" + name;
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    EXPECT_TRUE(fd);
    std::vector<char> block(k_mib);
    for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>('a' + i % 26);
    EXPECT_EQ(::pwrite(fd.get(), block.data(), block.size(), 0), k_mib);
    block[0] = 'Z';
    EXPECT_EQ(::pwrite(fd.get(), block.data(), block.size(), 40 * k_mib), k_mib);
    EXPECT_EQ(::ftruncate(fd.get(), 64 * k_mib), 0);
    EXPECT_EQ(::fsync(fd.get()), 0);
    return path;
  }

  std::string m_dir;
};

struct stat stat_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st;
}

TEST_F(DiskClone, CopiesContentAndKeepsHoles) {
  auto src = make_sparse("base.img");
  auto dst = m_dir + "/clone.img";
  auto method = clone_file(src, dst);
  ASSERT_TRUE(method) << method.error().to_string();

  auto a = read_file(src);
  auto b = read_file(dst);
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->size(), static_cast<size_t>(64 * k_mib));
  EXPECT_TRUE(*a == *b) << "clone content differs from the base";
  EXPECT_EQ((*b)[40 * k_mib], 'Z');

  auto st = stat_of(dst);
  EXPECT_EQ(st.st_size, 64 * k_mib);
  // 2 MiB of data; allow for filesystem preallocation, but far below the 64 MiB apparent size.
  EXPECT_LE(static_cast<off_t>(st.st_blocks) * 512, 8 * k_mib)
      << "the clone is not sparse (method "
      << (*method == CloneMethod::kReflink ? "reflink" : "copy") << ")";
  // The base is untouched.
  EXPECT_EQ(stat_of(src).st_size, 64 * k_mib);
}

// Across filesystems copy_file_range is refused (EXDEV): the copy goes on with reads and writes,
// still skipping the holes.
TEST_F(DiskClone, CopiesAcrossFilesystems) {
  auto src = make_sparse("base.img");
  char templ[] = "/dev/shm/fcvm-disk-XXXXXX";
  if (::mkdtemp(templ) == nullptr) GTEST_SKIP() << "no /dev/shm here";
  std::string other = templ;
  if (stat_of(other).st_dev == stat_of(m_dir).st_dev) {
    (void)remove_all(other);
    GTEST_SKIP() << "/dev/shm and " << m_dir << " are one filesystem";
  }
  auto dst = other + "/clone.img";
  auto method = clone_file(src, dst);
  auto a = read_file(src);
  auto b = read_file(dst);
  auto st = stat_of(dst);
  (void)remove_all(other);
  ASSERT_TRUE(method) << method.error().to_string();
  EXPECT_EQ(*method, CloneMethod::kCopy);
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(*a == *b) << "cross-filesystem copy differs from the base";
  EXPECT_EQ(st.st_size, 64 * k_mib);
  EXPECT_LE(static_cast<off_t>(st.st_blocks) * 512, 8 * k_mib) << "holes were filled";
}

TEST_F(DiskClone, EmptyAndAllHoleFiles) {
  auto empty = m_dir + "/empty.img";
  ASSERT_TRUE(write_file_atomic(empty, ""));
  ASSERT_TRUE(clone_file(empty, m_dir + "/empty-clone.img"));
  EXPECT_EQ(stat_of(m_dir + "/empty-clone.img").st_size, 0);

  auto holes = m_dir + "/holes.img";
  {
    UniqueFd fd(::open(holes.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_TRUE(fd);
    ASSERT_EQ(::ftruncate(fd.get(), 16 * k_mib), 0);
  }
  ASSERT_TRUE(clone_file(holes, m_dir + "/holes-clone.img"));
  auto st = stat_of(m_dir + "/holes-clone.img");
  EXPECT_EQ(st.st_size, 16 * k_mib);
  EXPECT_EQ(st.st_blocks, 0);
}

TEST_F(DiskClone, NeverOverwritesTheDestination) {
  auto src = make_sparse("base.img");
  auto dst = m_dir + "/existing.img";
  ASSERT_TRUE(write_file_atomic(dst, "keep me"));
  auto r = clone_file(src, dst);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().sys_errno(), EEXIST);
  EXPECT_EQ(read_file(dst).value_or(""), "keep me");
}

TEST_F(DiskClone, MissingSourceCreatesNothing) {
  auto dst = m_dir + "/clone.img";
  auto r = clone_file(m_dir + "/missing.img", dst);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().sys_errno(), ENOENT);
  EXPECT_FALSE(path_exists(dst));
}

TEST_F(DiskClone, ReflinkOnlyFailsCleanlyWithoutReflink) {
  auto src = make_sparse("base.img");
  auto dst = m_dir + "/clone.img";
  auto r = clone_file(src, dst, /*reflink_only=*/true);
  if (r) {
    EXPECT_EQ(*r, CloneMethod::kReflink);
    GTEST_SKIP() << m_dir << " supports reflinks (XFS/btrfs): the failure path needs ext4 or tmpfs";
  }
  EXPECT_NE(r.error().message().find("reflink"), std::string::npos) << r.error().to_string();
  EXPECT_NE(r.error().sys_errno(), 0);
  EXPECT_FALSE(path_exists(dst)) << "a failed reflink left " << dst << " behind";
}

}  // namespace
}  // namespace fcvm::storage
