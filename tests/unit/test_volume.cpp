// storage volumes: --map parsing and validation, image sizing, the ext4 image round trip with the
// real mke2fs/debugfs, the clean-unmount check on the superblock, the write-back merge (atomic
// renames, deletions, lost+found, across filesystems), the sshfs sandbox argv and the cleanup of
// .fuse_hidden files.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/storage/volume.hpp"
#include "fcvm/sys/command_runner.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::storage {
namespace {

constexpr uint64_t k_mib = 1024 * 1024;

// A fresh directory (removed with everything in it at the end of the scope).
class TempDir {
 public:
  explicit TempDir(const std::string& base = "/var/tmp") {
    std::string templ = base + "/fcvm-volume-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) != nullptr) m_path = buf.data();
  }
  ~TempDir() {
    if (!m_path.empty()) (void)remove_all(m_path);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  bool ok() const { return !m_path.empty(); }
  const std::string& path() const { return m_path; }
  std::string operator/(const std::string& name) const { return m_path + "/" + name; }

 private:
  std::string m_path;
};

// Writes a file with exactly `mode` (not filtered by the umask).
void put(const std::string& path, const std::string& content, mode_t mode = 0644) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd) << "create " << path;
  ASSERT_EQ(::write(fd.get(), content.data(), content.size()),
            static_cast<ssize_t>(content.size()));
  ASSERT_EQ(::fchmod(fd.get(), mode), 0) << path;
}

void make_dir(const std::string& path, mode_t mode = 0755) {
  ASSERT_EQ(::mkdir(path.c_str(), mode), 0) << path;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

std::string slurp(const std::string& path) {
  auto r = read_file(path);
  return r ? *r : std::string("<unreadable: ") + path + ">";
}

std::optional<struct stat> lstat_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return std::nullopt;
  return st;
}

bool exists(const std::string& path) { return lstat_of(path).has_value(); }

mode_t mode_of(const std::string& path) {
  auto st = lstat_of(path);
  return st ? (st->st_mode & 07777) : 0;
}

std::string link_target(const std::string& path) {
  std::error_code ec;
  auto t = std::filesystem::read_symlink(path, ec);
  return ec ? std::string("<not a symlink>") : t.string();
}

// Every path under dir, relative to it.
std::vector<std::string> list_tree(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    out.push_back(std::filesystem::relative(it->path(), dir).string());
  }
  return out;
}

// The executable `tool` in PATH (or the sbin directories), empty when missing.
std::string which(const std::string& tool) {
  std::string path = ::getenv("PATH") ? ::getenv("PATH") : "";
  path += ":/usr/sbin:/sbin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    auto colon = path.find(':', start);
    auto dir = path.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (!dir.empty()) {
      auto candidate = dir + "/" + tool;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return "";
}

#define SKIP_WITHOUT_E2FSPROGS()                                                 \
  do {                                                                           \
    if (which("mke2fs").empty()) GTEST_SKIP() << "mke2fs missing (e2fsprogs)";   \
    if (which("debugfs").empty()) GTEST_SKIP() << "debugfs missing (e2fsprogs)"; \
  } while (0)

// Runs one debugfs request against image (read-write). debugfs exits 0 even when a request fails,
// so callers check the effect.
void debugfs_write(const std::string& image, const std::string& request) {
  auto r = sys::default_runner().run({"debugfs", "-w", "-R", request, image});
  ASSERT_TRUE(r) << request << ": " << r.error().to_string();
}

// Read-modify-write of a little-endian field in the ext4 superblock (which starts at byte 1024).
uint32_t superblock_field(const std::string& image, off_t offset, size_t width) {
  UniqueFd fd(::open(image.c_str(), O_RDONLY | O_CLOEXEC));
  EXPECT_TRUE(fd) << image;
  unsigned char b[4] = {};
  EXPECT_EQ(::pread(fd.get(), b, width, 1024 + offset), static_cast<ssize_t>(width));
  uint32_t v = 0;
  for (size_t i = 0; i < width; ++i) v |= static_cast<uint32_t>(b[i]) << (8 * i);
  return v;
}
void set_superblock_field(const std::string& image, off_t offset, size_t width, uint32_t v) {
  UniqueFd fd(::open(image.c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(fd) << image;
  unsigned char b[4] = {};
  for (size_t i = 0; i < width; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
  ASSERT_EQ(::pwrite(fd.get(), b, width, 1024 + offset), static_cast<ssize_t>(width));
}

constexpr off_t k_s_state = 0x3A;             // u16, bit 0: EXT4_VALID_FS
constexpr off_t k_s_feature_incompat = 0x60;  // u32, bit 2: RECOVER
constexpr off_t k_s_magic = 0x38;             // u16, 0xEF53

// ---------------------------------------------------------------------------------------------
// parse_volume_map / to_string / check_unique_guests

std::string canonical(const std::string& p) { return std::filesystem::canonical(p).string(); }

TEST(VolumeMap, DirectoryDefaultsToBlockReadWriteWithCanonicalHost) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  make_dir(tmp / "real");
  ASSERT_EQ(::symlink("real", (tmp / "link").c_str()), 0);

  // Through "/./" and a symlink: the stored host is the resolved directory.
  auto m = parse_volume_map(tmp.path() + "/./link:/data");
  ASSERT_TRUE(m) << m.error().to_string();
  EXPECT_EQ(m->host, canonical(tmp / "real"));
  EXPECT_EQ(m->guest, "/data");
  EXPECT_FALSE(m->read_only);
  EXPECT_EQ(m->mode, VolumeMode::kBlock);
  EXPECT_TRUE(m->host_is_dir);

  auto rw = parse_volume_map(tmp.path() + "/real:/data:rw");
  ASSERT_TRUE(rw) << rw.error().to_string();
  EXPECT_FALSE(rw->read_only);
}

TEST(VolumeMap, ReadOnlyAndModes) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  auto host = canonical(tmp.path());

  auto ro = parse_volume_map(host + ":/data:ro");
  ASSERT_TRUE(ro) << ro.error().to_string();
  EXPECT_TRUE(ro->read_only);
  EXPECT_EQ(ro->mode, VolumeMode::kBlock);

  auto sshfs = parse_volume_map(host + ":/data:ro,mode=sshfs");
  ASSERT_TRUE(sshfs) << sshfs.error().to_string();
  EXPECT_TRUE(sshfs->read_only);
  EXPECT_EQ(sshfs->mode, VolumeMode::kSshfs);
  EXPECT_EQ(sshfs->guest, "/data");

  auto nfs = parse_volume_map(host + ":/srv/x,mode=nfs");
  ASSERT_TRUE(nfs) << nfs.error().to_string();
  EXPECT_FALSE(nfs->read_only);
  EXPECT_EQ(nfs->mode, VolumeMode::kNfs);

  auto block = parse_volume_map(host + ":/data,mode=block");
  ASSERT_TRUE(block) << block.error().to_string();
  EXPECT_EQ(block->mode, VolumeMode::kBlock);
}

TEST(VolumeMap, ImageFileAndTrailingSlashes) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  put(tmp / "disk.img", "x");
  auto m = parse_volume_map(tmp / "disk.img" + ":/img/");
  ASSERT_TRUE(m) << m.error().to_string();
  EXPECT_FALSE(m->host_is_dir);
  EXPECT_EQ(m->mode, VolumeMode::kBlock);
  EXPECT_EQ(m->host, canonical(tmp / "disk.img"));
  EXPECT_EQ(m->guest, "/img");

  auto d = parse_volume_map(tmp.path() + ":/a/b///");
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->guest, "/a/b");
}

void expect_invalid(const std::string& text, const std::string& also = "") {
  SCOPED_TRACE(text);
  auto m = parse_volume_map(text);
  ASSERT_FALSE(m) << "accepted, as " << m->to_string();
  EXPECT_EQ(m.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(m.error().message().find(text), std::string::npos) << m.error().message();
  if (!also.empty()) {
    EXPECT_NE(m.error().message().find(also), std::string::npos) << m.error().message();
  }
}

TEST(VolumeMap, RejectsBadValuesNamingThem) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  auto host = canonical(tmp.path());
  put(tmp / "disk.img", "x");
  auto file = canonical(tmp / "disk.img");

  expect_invalid(host + "/missing:/data", "does not exist");
  expect_invalid(host + ":data", "absolute");
  expect_invalid(host + ":/data/../etc");
  expect_invalid(host + ":/data/./x");
  expect_invalid(host + ":/");
  expect_invalid(host + "://");
  expect_invalid(host + ":/data,mode=floppy", "mode=floppy");
  expect_invalid(host + ":/data:ro,ro");
  expect_invalid(file + ":/x,mode=sshfs", "directory");
  expect_invalid(file + ":/x,mode=nfs", "directory");
  expect_invalid(host);
  expect_invalid(host + ":");
  expect_invalid(":/data");
  expect_invalid(host + ":/data:rx");
  expect_invalid(host + ":/data:ro:ro");
  expect_invalid("");
  expect_invalid("/dev/null:/null");  // neither a directory nor a regular file
}

// Found by fuzz_cli_values (ASan: stack-use-after-scope): the options were split into views of a
// temporary string. A short option list (kept inside the string object) and a long one (on the
// heap) are both read whole; the asan preset and the fuzzer see any use after scope.
TEST(VolumeMap, OptionsAreReadFromStorageThatOutlivesThem) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  auto host = canonical(tmp.path());
  auto short_list = parse_volume_map(host + ":/data:ro,mode=sshfs");
  ASSERT_TRUE(short_list) << short_list.error().to_string();
  EXPECT_EQ(short_list->mode, VolumeMode::kSshfs);
  auto long_list =
      parse_volume_map(host + ":/data,mode=nfs,mode=block,mode=nfs,mode=block,mode=sshfs");
  ASSERT_TRUE(long_list) << long_list.error().to_string();
  EXPECT_EQ(long_list->mode, VolumeMode::kSshfs);  // the last one wins
}

TEST(VolumeMap, ToStringRoundTrips) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  put(tmp / "disk.img", "x");
  auto host = canonical(tmp.path());
  auto ro = parse_volume_map(host + ":/data/:ro,mode=sshfs");
  ASSERT_TRUE(ro) << ro.error().to_string();
  EXPECT_EQ(ro->to_string(), host + ":/data:ro,mode=sshfs");

  for (const auto& text : {host + ":/data", host + ":/data:ro", host + ":/data:ro,mode=sshfs",
                           host + ":/srv/nfs,mode=nfs", tmp / "disk.img" + ":/img:ro"}) {
    SCOPED_TRACE(text);
    auto a = parse_volume_map(text);
    ASSERT_TRUE(a) << a.error().to_string();
    auto b = parse_volume_map(a->to_string());
    ASSERT_TRUE(b) << a->to_string() << ": " << b.error().to_string();
    EXPECT_EQ(b->host, a->host);
    EXPECT_EQ(b->guest, a->guest);
    EXPECT_EQ(b->read_only, a->read_only);
    EXPECT_EQ(b->mode, a->mode);
    EXPECT_EQ(b->host_is_dir, a->host_is_dir);
    EXPECT_EQ(b->to_string(), a->to_string());
  }
}

TEST(VolumeMap, GuestPathsMustBeUnique) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  make_dir(tmp / "a");
  make_dir(tmp / "b");
  auto a = parse_volume_map(tmp / "a" + ":/data");
  auto b = parse_volume_map(tmp / "b" + ":/data/");  // the same guest path once normalised
  auto c = parse_volume_map(tmp / "b" + ":/data2");
  ASSERT_TRUE(a && b && c);

  EXPECT_TRUE(check_unique_guests({}));
  EXPECT_TRUE(check_unique_guests({*a, *c}));
  auto dup = check_unique_guests({*a, *c, *b});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(dup.error().message().find("/data "), std::string::npos) << dup.error().message();
}

// ---------------------------------------------------------------------------------------------
// sizes

TEST(VolumeSize, ParsesMebibytes) {
  struct Case {
    const char* text;
    int64_t mib;
  };
  for (const auto& c : {Case{"512M", 512}, Case{"512m", 512}, Case{"2G", 2048}, Case{"2g", 2048},
                        Case{"1024", 1024}, Case{"16", 16}, Case{"1T", 1024 * 1024},
                        Case{"16T", int64_t{16} << 20}}) {
    SCOPED_TRACE(c.text);
    auto n = parse_size_mib(c.text);
    ASSERT_TRUE(n) << n.error().to_string();
    EXPECT_EQ(*n, c.mib);
  }
}

TEST(VolumeSize, RejectsBadSizesNamingThem) {
  for (const char* text : {"0", "0G", "8M", "15", "abc", "-1G", "-512", "", "G", "1.5G", "2X",
                           "17T", " 512M", "512MB"}) {
    SCOPED_TRACE(text);
    auto n = parse_size_mib(text);
    ASSERT_FALSE(n) << "accepted as " << *n << " MiB";
    EXPECT_EQ(n.error().code(), ErrorCode::kInvalidInput);
    EXPECT_NE(n.error().message().find(std::string("\"") + text + "\""), std::string::npos)
        << n.error().message();
  }
}

TEST(VolumeSize, ImageSize) {
  // An explicit size wins, however small or large the data.
  EXPECT_EQ(volume_image_size(10 * 1024 * k_mib, 1024), 1024 * k_mib);
  EXPECT_EQ(volume_image_size(0, 16), 16 * k_mib);
  // Auto: twice the data plus 256 MiB, at least 512 MiB, whole MiB.
  EXPECT_EQ(volume_image_size(0, 0), 512 * k_mib);
  EXPECT_EQ(volume_image_size(100 * k_mib, 0), 512 * k_mib);
  EXPECT_EQ(volume_image_size(128 * k_mib, 0), 512 * k_mib);
  EXPECT_EQ(volume_image_size(128 * k_mib + 1, 0), 513 * k_mib);
  EXPECT_EQ(volume_image_size(200 * k_mib, 0), 656 * k_mib);
  EXPECT_EQ(volume_image_size(300 * k_mib + 1, 0), 857 * k_mib);
  EXPECT_EQ(volume_image_size(4096 * k_mib, 0), (8192 + 256) * k_mib);
}

TEST(VolumeSize, TreeUsageCountsAllocatedBlocksWithoutFollowingSymlinks) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  make_dir(tmp / "vol");
  make_dir(tmp / "vol/sub");
  put(tmp / "vol/sub/data", std::string(2 * k_mib, 'x'));
  {
    // 256 MiB apparent, no data: holes take no space.
    UniqueFd fd(::open((tmp / "vol/sparse").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_TRUE(fd);
    ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(256 * k_mib)), 0);
  }
  // A big file outside, reached by a symlink: not part of the tree.
  put(tmp / "outside", std::string(8 * k_mib, 'y'));
  ASSERT_EQ(::symlink((tmp / "outside").c_str(), (tmp / "vol/link").c_str()), 0);
  ASSERT_EQ(::symlink(tmp.path().c_str(), (tmp / "vol/dirlink").c_str()), 0);
  ::sync();

  auto usage = tree_usage(tmp / "vol");
  ASSERT_TRUE(usage) << usage.error().to_string();
  EXPECT_GE(*usage, 2 * k_mib);
  EXPECT_LT(*usage, 6 * k_mib) << "holes or symlink targets were counted";

  EXPECT_FALSE(tree_usage(tmp / "missing"));
}

// ---------------------------------------------------------------------------------------------
// the ext4 image: create, check, write back

// A volume directory with a file, a nested directory, a symlink and a private file.
void fill_volume(const std::string& dir) {
  make_dir(dir);
  put(dir + "/a.txt", "alpha\n");
  make_dir(dir + "/sub", 0750);
  make_dir(dir + "/sub/deeper");
  put(dir + "/sub/b.txt", "bravo\n");
  put(dir + "/sub/deeper/c.txt", std::string(100000, 'c'));
  put(dir + "/secret", "private\n", 0600);
  ASSERT_EQ(::symlink("sub/b.txt", (dir + "/link").c_str()), 0);
}

TEST(VolumeImage, CreateThenSyncBackAfterGuestChanges) {
  SKIP_WITHOUT_E2FSPROGS();
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  auto& runner = sys::default_runner();
  auto dir = tmp / "vol";
  fill_volume(dir);
  auto image = tmp / "vol.img";
  put(image, "an old image to replace");

  auto made = create_volume_image(runner, dir, image, 64 * k_mib);
  ASSERT_TRUE(made) << made.error().to_string();
  ASSERT_TRUE(lstat_of(image));
  EXPECT_EQ(lstat_of(image)->st_size, static_cast<off_t>(64 * k_mib));
  EXPECT_EQ(superblock_field(image, k_s_magic, 2), 0xEF53u);
  auto clean = ext4_image_clean(image);
  ASSERT_TRUE(clean) << clean.error().to_string();
  EXPECT_TRUE(*clean) << "a freshly made image is not clean";

  // The image holds the tree.
  auto listing = runner.run({"debugfs", "-R", "ls -p /sub", image});
  ASSERT_TRUE(listing) << listing.error().to_string();
  EXPECT_NE(listing->find("b.txt"), std::string::npos) << *listing;
  EXPECT_NE(listing->find("deeper"), std::string::npos) << *listing;

  // The guest adds a file, deletes one and rewrites one.
  put(tmp / "host-new.txt", "new from the guest\n");
  put(tmp / "host-b.txt", "bravo, rewritten\n");
  debugfs_write(image, "write " + (tmp / "host-new.txt") + " /new.txt");
  debugfs_write(image, "rm /a.txt");
  debugfs_write(image, "rm /sub/b.txt");
  debugfs_write(image, "write " + (tmp / "host-b.txt") + " /sub/b.txt");
  debugfs_write(image, "mkdir /made");
  auto clean_after = ext4_image_clean(image);
  ASSERT_TRUE(clean_after) << clean_after.error().to_string();
  EXPECT_TRUE(*clean_after);

  auto staging = tmp / "staging";
  ASSERT_FALSE(exists(staging));
  auto synced = sync_image_to_dir(runner, image, dir, staging);
  ASSERT_TRUE(synced) << synced.error().to_string();

  EXPECT_EQ(slurp(dir + "/new.txt"), "new from the guest\n");
  EXPECT_FALSE(exists(dir + "/a.txt")) << "a file the guest deleted is back";
  EXPECT_EQ(slurp(dir + "/sub/b.txt"), "bravo, rewritten\n");
  EXPECT_TRUE(exists(dir + "/made") && S_ISDIR(lstat_of(dir + "/made")->st_mode));
  // Untouched entries keep their content, modes and kinds.
  EXPECT_EQ(slurp(dir + "/sub/deeper/c.txt"), std::string(100000, 'c'));
  EXPECT_EQ(slurp(dir + "/secret"), "private\n");
  EXPECT_EQ(mode_of(dir + "/secret"), 0600u);
  EXPECT_EQ(mode_of(dir + "/sub"), 0750u);
  ASSERT_TRUE(exists(dir + "/link"));
  EXPECT_TRUE(S_ISLNK(lstat_of(dir + "/link")->st_mode));
  EXPECT_EQ(link_target(dir + "/link"), "sub/b.txt");
  // lost+found is the image's, not the data's; the staging tree is gone.
  EXPECT_FALSE(exists(dir + "/lost+found"));
  EXPECT_FALSE(exists(staging)) << "the staging directory was left behind";
  for (const auto& p : list_tree(dir)) {
    EXPECT_EQ(p.find("fcvm-tmp"), std::string::npos) << p;
  }
}

// The staging tree on another filesystem (a VM directory on one disk, the volume on another):
// the files are copied beside their targets and renamed.
TEST(VolumeImage, SyncBackWithStagingOnAnotherFilesystem) {
  SKIP_WITHOUT_E2FSPROGS();
  TempDir tmp;
  TempDir shm("/dev/shm");
  ASSERT_TRUE(tmp.ok());
  if (!shm.ok()) GTEST_SKIP() << "no /dev/shm here";
  if (lstat_of(shm.path())->st_dev == lstat_of(tmp.path())->st_dev) {
    GTEST_SKIP() << "/dev/shm and /var/tmp are one filesystem";
  }
  auto& runner = sys::default_runner();
  auto dir = tmp / "vol";
  fill_volume(dir);
  auto image = tmp / "vol.img";
  ASSERT_TRUE(create_volume_image(runner, dir, image, 64 * k_mib));
  put(tmp / "host-new.txt", "new\n");
  debugfs_write(image, "write " + (tmp / "host-new.txt") + " /sub/new.txt");
  debugfs_write(image, "rm /a.txt");

  auto staging = shm / "staging";
  auto synced = sync_image_to_dir(runner, image, dir, staging);
  ASSERT_TRUE(synced) << synced.error().to_string();
  EXPECT_EQ(slurp(dir + "/sub/new.txt"), "new\n");
  EXPECT_FALSE(exists(dir + "/a.txt"));
  EXPECT_EQ(slurp(dir + "/sub/b.txt"), "bravo\n");
  EXPECT_EQ(slurp(dir + "/secret"), "private\n");
  EXPECT_EQ(mode_of(dir + "/secret"), 0600u);
  EXPECT_EQ(link_target(dir + "/link"), "sub/b.txt");
  EXPECT_FALSE(exists(dir + "/lost+found"));
  EXPECT_FALSE(exists(staging));
  for (const auto& p : list_tree(dir)) {
    EXPECT_EQ(p.find("fcvm-tmp"), std::string::npos) << p;
  }
}

TEST(VolumeImage, SyncRefusesAnExistingStaging) {
  SKIP_WITHOUT_E2FSPROGS();
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  auto dir = tmp / "vol";
  fill_volume(dir);
  auto image = tmp / "vol.img";
  ASSERT_TRUE(create_volume_image(sys::default_runner(), dir, image, 64 * k_mib));
  debugfs_write(image, "rm /a.txt");
  make_dir(tmp / "staging");
  put(tmp / "staging/stale", "stale");

  auto synced = sync_image_to_dir(sys::default_runner(), image, dir, tmp / "staging");
  ASSERT_FALSE(synced);
  EXPECT_EQ(synced.error().sys_errno(), EEXIST) << synced.error().to_string();
  EXPECT_EQ(slurp(dir + "/a.txt"), "alpha\n") << "the target changed";
  EXPECT_FALSE(exists(dir + "/stale"));
}

// An image debugfs cannot read must fail the sync and leave the directory as it was: debugfs
// exits 0 when it cannot open the file system (it only prints the error), and an empty staging
// tree would then "delete" every file of the volume.
TEST(VolumeImage, SyncFromAnUnreadableImageKeepsTheDirectory) {
  SKIP_WITHOUT_E2FSPROGS();
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  auto dir = tmp / "vol";
  fill_volume(dir);
  auto zero = tmp / "zero.img";
  put(zero, std::string(64 * 1024, '\0'));
  // What the monitor would write back: ext4_image_clean passes (magic, VALID_FS, no RECOVER),
  // but the superblock no longer matches its checksum, so debugfs refuses to open it.
  auto corrupt = tmp / "corrupt.img";
  ASSERT_TRUE(create_volume_image(sys::default_runner(), dir, corrupt, 32 * k_mib));
  auto incompat = superblock_field(corrupt, k_s_feature_incompat, 4);
  set_superblock_field(corrupt, k_s_feature_incompat, 4, incompat | 0x80000000u);
  ASSERT_TRUE(ext4_image_clean(corrupt).value_or(false));

  for (const auto& image : {zero, corrupt}) {
    SCOPED_TRACE(image);
    auto synced = sync_image_to_dir(sys::default_runner(), image, dir, tmp / "staging");
    EXPECT_FALSE(synced) << "a sync from an image debugfs cannot open succeeded";
    EXPECT_EQ(slurp(dir + "/a.txt"), "alpha\n") << "the host directory lost its files";
    EXPECT_EQ(slurp(dir + "/sub/b.txt"), "bravo\n");
    EXPECT_FALSE(exists(tmp / "staging"));
    if (!exists(dir + "/a.txt")) {
      ::rmdir(dir.c_str());  // emptied: put the tree back for the next case
      fill_volume(dir);
    }
  }
}

TEST(VolumeImage, CreateFailsCleanlyForAMissingDirectory) {
  SKIP_WITHOUT_E2FSPROGS();
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  auto image = tmp / "vol.img";
  auto made = create_volume_image(sys::default_runner(), tmp / "missing", image, 64 * k_mib);
  ASSERT_FALSE(made);
  EXPECT_NE(made.error().to_string().find(tmp / "missing"), std::string::npos)
      << made.error().to_string();
  EXPECT_FALSE(exists(image)) << "a failed create left the image behind";
}

TEST(VolumeImage, CleanCheckReadsTheSuperblock) {
  SKIP_WITHOUT_E2FSPROGS();
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  make_dir(tmp / "vol");
  put(tmp / "vol/f", "f");
  auto image = tmp / "vol.img";
  ASSERT_TRUE(create_volume_image(sys::default_runner(), tmp / "vol", image, 32 * k_mib));
  ASSERT_TRUE(ext4_image_clean(image).value_or(false));

  // A journal to replay (RECOVER in s_feature_incompat): not clean.
  auto recover = tmp / "recover.img";
  ASSERT_TRUE(clone_file_data(image, recover, false, 0600));
  auto incompat = superblock_field(recover, k_s_feature_incompat, 4);
  ASSERT_EQ(incompat & 0x4u, 0u);
  set_superblock_field(recover, k_s_feature_incompat, 4, incompat | 0x4u);
  auto r = ext4_image_clean(recover);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_FALSE(*r) << "an image with a journal to replay counted as clean";

  // Mounted, never unmounted (s_state without VALID_FS): not clean.
  auto dirty = tmp / "dirty.img";
  ASSERT_TRUE(clone_file_data(image, dirty, false, 0600));
  auto state = superblock_field(dirty, k_s_state, 2);
  ASSERT_EQ(state & 0x1u, 1u);
  set_superblock_field(dirty, k_s_state, 2, state & ~0x1u);
  auto d = ext4_image_clean(dirty);
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_FALSE(*d) << "an image without VALID_FS counted as clean";
}

TEST(VolumeImage, CleanCheckRejectsWhatIsNotExt4) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  put(tmp / "zero.img", std::string(8192, '\0'));
  auto zero = ext4_image_clean(tmp / "zero.img");
  ASSERT_FALSE(zero) << "zeros passed as an ext4 image";
  EXPECT_NE(zero.error().message().find("not an ext4 image"), std::string::npos)
      << zero.error().to_string();

  put(tmp / "short.img", "tiny");
  EXPECT_FALSE(ext4_image_clean(tmp / "short.img"));
  auto missing = ext4_image_clean(tmp / "missing.img");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().sys_errno(), ENOENT);
}

// ---------------------------------------------------------------------------------------------
// merge_tree

TEST(VolumeMerge, MirrorsTheTreeWithRenames) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  auto from = tmp / "from";
  auto target = tmp / "target";
  make_dir(from);
  make_dir(target);

  // target: the state before the VM ran.
  put(target + "/changed.txt", "old\n");
  put(target + "/same.txt", "same\n");
  put(target + "/removed.txt", "gone soon\n");
  make_dir(target + "/olddir");
  make_dir(target + "/olddir/deep");
  put(target + "/olddir/deep/f", "f");
  put(target + "/was_file", "a file before\n");
  make_dir(target + "/was_dir");
  put(target + "/was_dir/inner", "inner");
  make_dir(target + "/lost+found");
  put(target + "/lost+found/keep", "the host's own lost+found");
  make_dir(target + "/kept");
  put(target + "/kept/x", "x-old");
  put(target + "/kept/drop", "drop");

  // from: the state the guest left.
  put(from + "/changed.txt", "new\n");
  put(from + "/same.txt", "same\n");
  put(from + "/added.txt", "added\n", 0640);
  make_dir(from + "/was_file", 0700);
  put(from + "/was_file/inside", "now a directory\n");
  put(from + "/was_dir", "now a file\n");
  make_dir(from + "/lost+found");
  put(from + "/lost+found/#12", "fsck debris");
  make_dir(from + "/kept", 0777);
  put(from + "/kept/x", "x-new");
  make_dir(from + "/kept/lost+found");  // only the top-level one is special
  put(from + "/kept/lost+found/y", "y");
  make_dir(from + "/newdir");
  make_dir(from + "/newdir/nested");
  put(from + "/newdir/nested/n", "n");
  ASSERT_EQ(::symlink("changed.txt", (from + "/link").c_str()), 0);

  auto changed_ino = lstat_of(from + "/changed.txt")->st_ino;
  auto added_ino = lstat_of(from + "/added.txt")->st_ino;
  auto was_dir_ino = lstat_of(from + "/was_dir")->st_ino;

  auto merged = merge_tree(from, target);
  ASSERT_TRUE(merged) << merged.error().to_string();

  EXPECT_EQ(slurp(target + "/changed.txt"), "new\n");
  EXPECT_EQ(slurp(target + "/same.txt"), "same\n");
  EXPECT_EQ(slurp(target + "/added.txt"), "added\n");
  EXPECT_EQ(mode_of(target + "/added.txt"), 0640u);
  // Replaced by rename: the file in target is the file that was in from.
  EXPECT_EQ(lstat_of(target + "/changed.txt")->st_ino, changed_ino);
  EXPECT_EQ(lstat_of(target + "/added.txt")->st_ino, added_ino);
  EXPECT_EQ(lstat_of(target + "/was_dir")->st_ino, was_dir_ino);

  EXPECT_FALSE(exists(target + "/removed.txt"));
  EXPECT_FALSE(exists(target + "/olddir")) << "a directory gone from the image stayed";

  ASSERT_TRUE(exists(target + "/was_file"));
  EXPECT_TRUE(S_ISDIR(lstat_of(target + "/was_file")->st_mode));
  EXPECT_EQ(mode_of(target + "/was_file"), 0700u);
  EXPECT_EQ(slurp(target + "/was_file/inside"), "now a directory\n");
  ASSERT_TRUE(exists(target + "/was_dir"));
  EXPECT_TRUE(S_ISREG(lstat_of(target + "/was_dir")->st_mode));
  EXPECT_EQ(slurp(target + "/was_dir"), "now a file\n");

  // The top-level lost+found of from is not data; target's own stays as it was.
  EXPECT_EQ(slurp(target + "/lost+found/keep"), "the host's own lost+found");
  EXPECT_FALSE(exists(target + "/lost+found/#12"));
  // Deeper down, lost+found is an ordinary directory.
  EXPECT_EQ(slurp(target + "/kept/lost+found/y"), "y");
  EXPECT_EQ(slurp(target + "/kept/x"), "x-new");
  EXPECT_FALSE(exists(target + "/kept/drop"));
  EXPECT_EQ(mode_of(target + "/kept"), 0777u) << "directory modes are not the image's";
  EXPECT_EQ(slurp(target + "/newdir/nested/n"), "n");
  EXPECT_EQ(link_target(target + "/link"), "changed.txt");
}

TEST(VolumeMerge, DoesNotCreateLostAndFound) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  make_dir(tmp / "from");
  make_dir(tmp / "target");
  make_dir(tmp / "from/lost+found");
  put(tmp / "from/data", "d");
  ASSERT_TRUE(merge_tree(tmp / "from", tmp / "target"));
  EXPECT_EQ(slurp(tmp / "target/data"), "d");
  EXPECT_FALSE(exists(tmp / "target/lost+found"));
}

TEST(VolumeMerge, EmptyFromEmptiesTheTarget) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  make_dir(tmp / "from");
  make_dir(tmp / "target");
  put(tmp / "target/a", "a");
  make_dir(tmp / "target/d");
  put(tmp / "target/d/b", "b");
  ASSERT_TRUE(merge_tree(tmp / "from", tmp / "target"));
  EXPECT_TRUE(list_tree(tmp / "target").empty());
  EXPECT_TRUE(exists(tmp / "target"));
}

class VolumeMergeAcrossFilesystems : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(m_target_root.ok());
    if (!m_from_root.ok()) GTEST_SKIP() << "no /dev/shm here";
    if (lstat_of(m_from_root.path())->st_dev == lstat_of(m_target_root.path())->st_dev) {
      GTEST_SKIP() << "/dev/shm and /var/tmp are one filesystem";
    }
  }
  TempDir m_from_root{"/dev/shm"};
  TempDir m_target_root;
};

TEST_F(VolumeMergeAcrossFilesystems, CopiesBesideAndRenames) {
  auto from = m_from_root / "from";
  auto target = m_target_root / "target";
  make_dir(from);
  make_dir(target);
  put(target + "/changed.txt", "old\n");
  put(target + "/removed.txt", "x");
  make_dir(target + "/was_dir");
  put(target + "/was_dir/f", "f");

  put(from + "/changed.txt", std::string(300000, 'n'));
  put(from + "/private", "p", 0600);
  make_dir(from + "/sub");
  put(from + "/sub/added", "added\n");
  put(from + "/was_dir", "file now\n");
  ASSERT_EQ(::symlink("sub/added", (from + "/link").c_str()), 0);
  timespec old_times[2] = {{1000000000, 0}, {1000000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (from + "/sub/added").c_str(), old_times, 0), 0);

  auto merged = merge_tree(from, target);
  ASSERT_TRUE(merged) << merged.error().to_string();
  EXPECT_EQ(slurp(target + "/changed.txt"), std::string(300000, 'n'));
  EXPECT_EQ(slurp(target + "/private"), "p");
  EXPECT_EQ(mode_of(target + "/private"), 0600u);
  EXPECT_EQ(slurp(target + "/sub/added"), "added\n");
  EXPECT_EQ(lstat_of(target + "/sub/added")->st_mtim.tv_sec, 1000000000)
      << "the modification time was not kept";
  EXPECT_EQ(slurp(target + "/was_dir"), "file now\n");
  EXPECT_EQ(link_target(target + "/link"), "sub/added");
  EXPECT_FALSE(exists(target + "/removed.txt"));
  auto tree = list_tree(target);
  for (const auto& p : tree) EXPECT_EQ(p.find("fcvm-tmp"), std::string::npos) << p;
  EXPECT_EQ(tree.size(), 6u) << ::testing::PrintToString(tree);
}

// A copied file gets the mode it has in the image, whatever the umask (a rename keeps it anyway).
TEST_F(VolumeMergeAcrossFilesystems, KeepsModesWhateverTheUmask) {
  auto from = m_from_root / "from";
  auto target = m_target_root / "target";
  make_dir(from);
  make_dir(target);
  put(from + "/shared", "group-writable\n", 0664);
  put(from + "/public", "world-writable\n", 0666);
  put(from + "/tool", "#!/bin/sh\n", 0775);
  put(target + "/shared", "old\n", 0664);

  mode_t old_umask = ::umask(022);
  auto merged = merge_tree(from, target);
  ::umask(old_umask);
  ASSERT_TRUE(merged) << merged.error().to_string();
  EXPECT_EQ(slurp(target + "/shared"), "group-writable\n");
  EXPECT_EQ(mode_of(target + "/shared"), 0664u);
  EXPECT_EQ(mode_of(target + "/public"), 0666u);
  EXPECT_EQ(mode_of(target + "/tool"), 0775u);
}

// ---------------------------------------------------------------------------------------------
// sshfs mode

bool has_run(const std::vector<std::string>& argv, const std::vector<std::string>& run) {
  for (size_t i = 0; i + run.size() <= argv.size(); ++i) {
    if (std::equal(run.begin(), run.end(), argv.begin() + static_cast<std::ptrdiff_t>(i))) {
      return true;
    }
  }
  return false;
}

size_t count_of(const std::vector<std::string>& argv, const std::string& word) {
  return static_cast<size_t>(std::count(argv.begin(), argv.end(), word));
}

TEST(VolumeSshfs, SandboxArgv) {
  const std::string server = "/usr/lib/openssh/sftp-server";
  const std::vector<std::string> libs = {"/lib/x86_64-linux-gnu/libc.so.6",
                                         "/lib64/ld-linux-x86-64.so.2"};
  const std::string passwd = "/run/fcvm/vm1/sftp-0.log.passwd";
  const std::string dir = "/home/me/project";

  for (bool ro : {false, true}) {
    SCOPED_TRACE(ro ? "read-only" : "read-write");
    auto argv = sftp_server_argv(server, libs, passwd, dir, ro);
    ASSERT_FALSE(argv.empty());
    EXPECT_EQ(argv[0], "bwrap");
    EXPECT_EQ(count_of(argv, "--unshare-all"), 1u);
    EXPECT_EQ(count_of(argv, "--die-with-parent"), 1u);
    for (const auto& lib : libs) EXPECT_TRUE(has_run(argv, {"--ro-bind", lib, lib})) << lib;
    EXPECT_TRUE(has_run(argv, {"--ro-bind", passwd, "/etc/passwd"}));
    EXPECT_TRUE(has_run(argv, {"--ro-bind", server, server}));
    // The directory is the only writable bind, and only when the volume is writable.
    EXPECT_TRUE(has_run(argv, {ro ? "--ro-bind" : "--bind", dir, "/volume"}));
    EXPECT_FALSE(has_run(argv, {ro ? "--bind" : "--ro-bind", dir, "/volume"}));
    EXPECT_EQ(count_of(argv, "--bind"), ro ? 0u : 1u);
    EXPECT_EQ(count_of(argv, "--bind-try") + count_of(argv, "--dev-bind"), 0u);
    // The command: the server serving /volume, -R (read-only) only for a read-only volume.
    auto cmd = std::find(argv.begin(), argv.end(), "--chdir");
    ASSERT_NE(cmd, argv.end());
    auto srv = std::find(cmd, argv.end(), server);
    ASSERT_NE(srv, argv.end()) << "the server is not the command";
    std::vector<std::string> tail(srv, argv.end());
    ASSERT_GE(tail.size(), 3u);
    EXPECT_EQ(tail[1], "-d");
    EXPECT_EQ(tail[2], "/volume");
    EXPECT_EQ(count_of(tail, "-R"), ro ? 1u : 0u) << ::testing::PrintToString(tail);
    EXPECT_EQ(count_of(argv, "-R"), ro ? 1u : 0u);
    // No bwrap option after the command starts.
    for (const auto& w : tail) EXPECT_NE(w.rfind("--", 0), 0u) << w;
  }
}

TEST(VolumeSshfs, FindsTheServerOrNamesThePackage) {
  auto server = find_sftp_server();
  if (server) {
    EXPECT_EQ(::access(server->c_str(), X_OK), 0) << *server;
    EXPECT_EQ(server->rfind("/", 0), 0u);
  } else {
    EXPECT_EQ(server.error().code(), ErrorCode::kUnavailable);
    EXPECT_NE(server.error().message().find("openssh-sftp-server"), std::string::npos)
        << server.error().message();
  }
}

TEST(VolumeSshfs, RemovesRecentFuseHiddenFilesOnly) {
  TempDir tmp;
  ASSERT_TRUE(tmp.ok());
  make_dir(tmp / "sub");
  put(tmp / ".fuse_hidden0001", "1");
  put(tmp / "sub/.fuse_hidden0002", "2");
  put(tmp / ".fuse_hidden0003", "old");
  put(tmp / "normal.txt", "n");
  put(tmp / "sub/fuse_hidden_not", "n");  // no leading dot: not sshfs's
  make_dir(tmp / ".fuse_hidden_dir");     // a directory, not a leftover file
  // 2000-01-01T00:00:00Z: long before this run.
  timespec y2k[2] = {{946684800, 0}, {946684800, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (tmp / ".fuse_hidden0003").c_str(), y2k, 0), 0);

  auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  auto removed = remove_fuse_hidden(tmp.path(), now_ms - 10000);
  ASSERT_TRUE(removed) << removed.error().to_string();
  EXPECT_EQ(*removed, 2u);
  EXPECT_FALSE(exists(tmp / ".fuse_hidden0001"));
  EXPECT_FALSE(exists(tmp / "sub/.fuse_hidden0002"));
  EXPECT_TRUE(exists(tmp / ".fuse_hidden0003")) << "a file from before the run went";
  EXPECT_TRUE(exists(tmp / "normal.txt"));
  EXPECT_TRUE(exists(tmp / "sub/fuse_hidden_not"));
  EXPECT_TRUE(exists(tmp / ".fuse_hidden_dir"));

  // Nothing left to remove; a since in the future removes nothing either.
  put(tmp / ".fuse_hidden0004", "4");
  auto again = remove_fuse_hidden(tmp.path(), now_ms + 3600 * 1000);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0u);
  EXPECT_TRUE(exists(tmp / ".fuse_hidden0004"));
}

// The NFS server's configuration: NFSv4 only on the bridge address and port, one export per
// volume whose only client is the VM's address, RO for :ro.
TEST(VolumeNfs, ConfigExportsToTheVmAlone) {
  auto conf = nfs_server_config({{"/srv/a", "/vol0", false}, {"/srv/b dir", "/vol2", true}},
                                "172.31.0.1", 40123, "172.31.0.7", "/run/vm/nfs");
  EXPECT_NE(conf.find("Protocols = 4;"), std::string::npos);
  EXPECT_NE(conf.find("NFS_Port = 40123;"), std::string::npos);
  EXPECT_NE(conf.find("Bind_addr = 172.31.0.1;"), std::string::npos);
  EXPECT_NE(conf.find("Graceless = true;"), std::string::npos);
  EXPECT_NE(conf.find("RecoveryRoot = /run/vm/nfs;"), std::string::npos);
  EXPECT_NE(conf.find("Path = \"/srv/a\";"), std::string::npos);
  EXPECT_NE(conf.find("Path = \"/srv/b dir\";"), std::string::npos);
  EXPECT_NE(conf.find("Pseudo = /vol2;"), std::string::npos);
  EXPECT_NE(conf.find("CLIENT { Clients = 172.31.0.7; Access_Type = RW; }"), std::string::npos);
  EXPECT_NE(conf.find("CLIENT { Clients = 172.31.0.7; Access_Type = RO; }"), std::string::npos);
  // Nobody else: the export's own access is NONE, and no other client line exists.
  size_t clients = 0;
  for (size_t at = conf.find("Clients = "); at != std::string::npos;
       at = conf.find("Clients = ", at + 1)) {
    ++clients;
  }
  EXPECT_EQ(clients, 2u);
  size_t none = 0;
  for (size_t at = conf.find("Access_Type = NONE;"); at != std::string::npos;
       at = conf.find("Access_Type = NONE;", at + 1)) {
    ++none;
  }
  EXPECT_EQ(none, 2u);
}

}  // namespace
}  // namespace fcvm::storage
