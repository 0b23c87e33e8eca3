#include "fcvm/storage/volume.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <set>
#include <thread>

#include "fcvm/util/fs.hpp"
#include "fcvm/util/inet.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::storage {
namespace fs = std::filesystem;

std::string_view volume_mode_name(VolumeMode m) {
  switch (m) {
    case VolumeMode::kBlock:
      return "block";
    case VolumeMode::kSshfs:
      return "sshfs";
    case VolumeMode::kNfs:
      return "nfs";
  }
  return "?";
}

std::string VolumeMap::to_string() const {
  return fmt::format("{}:{}{},mode={}", host, guest, read_only ? ":ro" : "",
                     volume_mode_name(mode));
}

namespace {
Error bad_map(std::string_view text, const std::string& why) {
  return Error(ErrorCode::kInvalidInput, fmt::format("invalid --map \"{}\": {}", text, why));
}
// e2fsprogs lives in sbin, which an ordinary user's PATH often lacks.
std::string e2fs_tool(const char* name) {
  for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/"}) {
    auto p = std::string(dir) + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return name;
}

bool clean_absolute(const std::string& p) {
  if (p.empty() || p[0] != '/') return false;
  for (auto part : split(p, '/')) {
    if (part == "." || part == "..") return false;
  }
  return true;
}
}  // namespace

Result<VolumeMap> parse_volume_map(std::string_view text) {
  VolumeMap m;
  std::string spec(text);
  // Options after the first comma: mode=block|sshfs|nfs.
  auto comma = spec.find(',');
  if (comma != std::string::npos) {
    // split() returns views: the options must outlive the loop (a temporary substr would not).
    const std::string options = spec.substr(comma + 1);
    for (auto opt : split(options, ',')) {
      if (opt == "mode=block") {
        m.mode = VolumeMode::kBlock;
      } else if (opt == "mode=sshfs") {
        m.mode = VolumeMode::kSshfs;
      } else if (opt == "mode=nfs") {
        m.mode = VolumeMode::kNfs;
      } else {
        return tl::unexpected<Error>(bad_map(
            text, fmt::format("unknown option \"{}\" (expected mode=block|sshfs|nfs)", opt)));
      }
    }
    spec.resize(comma);
  }
  auto parts = split(spec, ':');
  if (parts.size() == 3 && parts[2] == "ro") {
    m.read_only = true;
    parts.pop_back();
  } else if (parts.size() == 3 && parts[2] == "rw") {
    parts.pop_back();
  }
  if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
    return tl::unexpected<Error>(bad_map(text, "expected HOST:GUEST[:ro][,mode=block|sshfs|nfs]"));
  }
  std::error_code ec;
  auto host = fs::absolute(std::string(parts[0]), ec);
  if (ec) return tl::unexpected<Error>(bad_map(text, "cannot resolve the host path"));
  auto status = fs::status(host, ec);
  if (ec || !fs::exists(status)) {
    return tl::unexpected<Error>(bad_map(
        text,
        fmt::format("the host path {} does not exist (fcvm does not create it)", host.string())));
  }
  m.host = fs::canonical(host, ec).string();
  if (ec) return tl::unexpected<Error>(bad_map(text, "cannot resolve the host path"));
  m.host_is_dir = fs::is_directory(status);
  if (!m.host_is_dir && !fs::is_regular_file(status)) {
    return tl::unexpected<Error>(
        bad_map(text, "the host path must be a directory or an image file"));
  }
  if (!m.host_is_dir && m.mode != VolumeMode::kBlock) {
    return tl::unexpected<Error>(
        bad_map(text, fmt::format("mode={} needs a host directory", volume_mode_name(m.mode))));
  }
  if (!clean_absolute(std::string(parts[1]))) {
    return tl::unexpected<Error>(
        bad_map(text, "the guest path must be absolute, without . or .. parts"));
  }
  // One spelling per path: repeated and trailing slashes go.
  for (auto part : split(parts[1], '/')) {
    if (!part.empty()) m.guest += "/" + std::string(part);
  }
  if (m.guest.empty()) m.guest = "/";
  if (!clean_absolute(m.guest)) {
    return tl::unexpected<Error>(
        bad_map(text, "the guest path must be absolute, without . or .. parts"));
  }
  if (m.guest == "/") return tl::unexpected<Error>(bad_map(text, "the guest path cannot be /"));
  return m;
}

Result<> check_unique_guests(const std::vector<VolumeMap>& maps) {
  std::set<std::string> seen;
  for (const auto& m : maps) {
    if (!seen.insert(m.guest).second) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("invalid --map: the guest path {} is mapped twice", m.guest));
    }
  }
  return {};
}

Result<int64_t> parse_size_mib(std::string_view text) {
  std::string t(text);
  int64_t mult = 1;
  if (!t.empty()) {
    char u = static_cast<char>(std::toupper(static_cast<unsigned char>(t.back())));
    if (u == 'M' || u == 'G' || u == 'T') {
      mult = u == 'M' ? 1 : u == 'G' ? 1024 : 1024 * 1024;
      t.pop_back();
    }
  }
  auto n = parse_int(t, 1, int64_t{1} << 40);
  if (!n || *n * mult < 16 || *n * mult > (int64_t{16} << 20)) {
    return fail(
        ErrorCode::kInvalidInput,
        fmt::format("invalid size \"{}\": expected e.g. 512M, 4G (16 MiB to 16 TiB)", text));
  }
  return *n * mult;
}

Result<TreeSize> tree_size(const std::string& dir) {
  TreeSize t;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  if (ec) return fail_errno(fmt::format("list {}", dir), ec.value());
  for (; it != end; it.increment(ec)) {
    if (ec) return fail_errno(fmt::format("list {}", dir), ec.value());
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    t.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    t.inodes++;
  }
  return t;
}

Result<uint64_t> tree_usage(const std::string& dir) {
  auto t = tree_size(dir);
  if (!t) return tl::unexpected<Error>(t.error());
  return t->bytes;
}

uint64_t volume_image_size(uint64_t usage_bytes, int64_t size_mib) {
  constexpr uint64_t mib = 1024 * 1024;
  if (size_mib > 0) return static_cast<uint64_t>(size_mib) * mib;
  uint64_t want = usage_bytes * 2 + 256 * mib;
  want = (want + mib - 1) / mib * mib;
  return std::max<uint64_t>(want, 512 * mib);
}

Result<> create_volume_image(sys::CommandRunner& runner, const std::string& dir,
                             const std::string& image, uint64_t size_bytes) {
  ::unlink(image.c_str());
  {
    UniqueFd fd(::open(image.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) return fail_errno(fmt::format("create {}", image));
    if (::ftruncate(fd.get(), static_cast<off_t>(size_bytes)) != 0) {
      ::unlink(image.c_str());
      return fail_errno(fmt::format("size {}", image));
    }
  }
  // -d copies the tree with owners, modes and times; no reserved blocks: it is all user data.
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    ::unlink(image.c_str());
    return fail_errno(fmt::format("stat {}", dir));
  }
  auto made =
      runner.run({e2fs_tool("mke2fs"), "-q", "-F", "-t", "ext4", "-m", "0", "-L", "fcvm-volume",
                  "-E", fmt::format("root_owner={}:{}", st.st_uid, st.st_gid), "-d", dir, image});
  if (!made) {
    ::unlink(image.c_str());
    return fail(made.error().wrap(fmt::format("make a volume image of {}", dir)));
  }
  return {};
}

Result<bool> ext4_image_clean(const std::string& image) {
  UniqueFd fd(::open(image.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno(fmt::format("open {}", image));
  unsigned char sb[1024];
  if (::pread(fd.get(), sb, sizeof sb, 1024) != static_cast<ssize_t>(sizeof sb)) {
    return fail_errno(fmt::format("read the superblock of {}", image));
  }
  auto le16 = [&](size_t o) { return static_cast<unsigned>(sb[o] | (sb[o + 1] << 8)); };
  auto le32 = [&](size_t o) {
    return static_cast<uint32_t>(sb[o]) | (static_cast<uint32_t>(sb[o + 1]) << 8) |
           (static_cast<uint32_t>(sb[o + 2]) << 16) | (static_cast<uint32_t>(sb[o + 3]) << 24);
  };
  if (le16(0x38) != 0xEF53) return fail(ErrorCode::kProtocol, image + " is not an ext4 image");
  bool valid = (le16(0x3A) & 0x1) != 0;    // s_state: EXT4_VALID_FS
  bool recover = (le32(0x60) & 0x4) != 0;  // s_feature_incompat: RECOVER (journal to replay)
  return valid && !recover;
}

namespace {
// Puts `from` at `to` atomically: a rename, or (another filesystem) a copy beside `to` that is
// made durable and then renamed over it.
Result<> replace_entry(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) == 0) return {};
  if (errno != EXDEV) return fail_errno(fmt::format("rename {} to {}", from.string(), to.string()));
  auto tmp = to.parent_path() / fmt::format(".{}.fcvm-tmp-{}", to.filename().string(), ::getpid());
  ::unlink(tmp.c_str());
  struct stat st {};
  if (::lstat(from.c_str(), &st) != 0) return fail_errno(fmt::format("stat {}", from.string()));
  if (S_ISLNK(st.st_mode)) {
    std::error_code ec;
    auto target = fs::read_symlink(from, ec);
    if (ec || ::symlink(target.c_str(), tmp.c_str()) != 0) {
      return fail_errno(fmt::format("symlink {}", tmp.string()));
    }
  } else {
    auto copied = clone_file_data(from.string(), tmp.string(), false, st.st_mode & 07777);
    if (!copied) return tl::unexpected<Error>(copied.error());
    UniqueFd fd(::open(tmp.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd || ::fsync(fd.get()) != 0) {
      ::unlink(tmp.c_str());
      return fail_errno(fmt::format("sync {}", tmp.string()));
    }
    (void)::lchown(tmp.c_str(), st.st_uid, st.st_gid);
    // After the chown (which clears set-id bits), and whatever the umask took at creation.
    (void)::chmod(tmp.c_str(), st.st_mode & 07777);
    timespec times[2] = {st.st_atim, st.st_mtim};
    (void)::utimensat(AT_FDCWD, tmp.c_str(), times, AT_SYMLINK_NOFOLLOW);
  }
  if (::rename(tmp.c_str(), to.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return fail_errno(fmt::format("rename {} to {}", tmp.string(), to.string()), e);
  }
  return {};
}

Result<> merge_dir(const fs::path& from, const fs::path& target, bool top) {
  std::error_code ec;
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(from, ec)) {
    auto name = entry.path().filename().string();
    if (top && name == "lost+found") continue;
    names.insert(name);
    auto dest = target / name;
    struct stat st {
    }, dst{};
    if (::lstat(entry.path().c_str(), &st) != 0) {
      return fail_errno(fmt::format("stat {}", entry.path().string()));
    }
    bool dest_exists = ::lstat(dest.c_str(), &dst) == 0;
    if (S_ISDIR(st.st_mode)) {
      if (dest_exists && !S_ISDIR(dst.st_mode)) ::unlink(dest.c_str());
      if (!dest_exists || !S_ISDIR(dst.st_mode)) {
        if (::mkdir(dest.c_str(), st.st_mode & 07777) != 0 && errno != EEXIST) {
          return fail_errno(fmt::format("create {}", dest.string()));
        }
      }
      (void)::chmod(dest.c_str(), st.st_mode & 07777);
      (void)::lchown(dest.c_str(), st.st_uid, st.st_gid);
      FCVM_TRY(merge_dir(entry.path(), dest, false));
    } else {
      if (dest_exists && S_ISDIR(dst.st_mode)) FCVM_TRY(remove_all(dest.string()));
      FCVM_TRY(replace_entry(entry.path(), dest));
    }
  }
  if (ec) return fail_errno(fmt::format("list {}", from.string()), ec.value());
  // What the guest deleted goes from the host too.
  std::vector<fs::path> gone;
  for (const auto& entry : fs::directory_iterator(target, ec)) {
    if (names.count(entry.path().filename().string()) == 0) gone.push_back(entry.path());
  }
  if (ec) return fail_errno(fmt::format("list {}", target.string()), ec.value());
  for (const auto& p : gone) {
    if (top && p.filename() == "lost+found") continue;
    FCVM_TRY(remove_all(p.string()));
  }
  return {};
}
}  // namespace

Result<> merge_tree(const std::string& from, const std::string& target) {
  return merge_dir(from, target, true);
}

Result<> sync_image_to_dir(sys::CommandRunner& runner, const std::string& image,
                           const std::string& target, const std::string& staging, bool check_fs) {
  if (::mkdir(staging.c_str(), 0700) != 0) return fail_errno(fmt::format("create {}", staging));
  // debugfs exits 0 even when it cannot open the image or a file fails to come out: its stderr
  // is the verdict (anything beyond its version banner is a failure). Merging an incomplete
  // extraction would delete the host's files, so nothing is merged then.
  auto extract = [&]() -> Result<> {
    if (check_fs) {
      auto checked = runner.run({e2fs_tool("e2fsck"), "-n", "-f", image});
      if (!checked) return fail(checked.error().wrap("check " + image));
    }
    FCVM_TRY_ASSIGN(auto dump, runner.capture({e2fs_tool("debugfs"), "-R",
                                               fmt::format("rdump / {}", staging), image}));
    std::string problems;
    if (!dump.status.exited || dump.status.code != 0) problems = dump.status.describe();
    for (auto line : split(dump.err, '\n')) {
      auto t = trim(line);
      if (t.empty() || t.rfind("debugfs ", 0) == 0) continue;
      problems += (problems.empty() ? "" : "; ") + std::string(t);
    }
    if (!problems.empty()) {
      return fail(ErrorCode::kSystem, fmt::format("read {}: {}", image, problems));
    }
    return {};
  };
  auto done = extract();
  Result<> merged = done ? merge_tree(staging, target) : done;
  (void)remove_all(staging);
  return merged;
}

Result<size_t> remove_fuse_hidden(const std::string& dir, int64_t since_ms) {
  size_t removed = 0;
  std::error_code ec;
  std::vector<fs::path> doomed;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  if (ec) return fail_errno(fmt::format("list {}", dir), ec.value());
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    if (it->path().filename().string().rfind(".fuse_hidden", 0) != 0) continue;
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    int64_t mtime_ms = int64_t{st.st_mtim.tv_sec} * 1000 + st.st_mtim.tv_nsec / 1'000'000;
    if (mtime_ms + 1000 >= since_ms) doomed.push_back(it->path());
  }
  for (const auto& p : doomed) removed += ::unlink(p.c_str()) == 0 ? 1 : 0;
  return removed;
}

std::string nfs_server_config(const std::vector<NfsExport>& exports,
                              const std::string& bind_address, int port, const std::string& client,
                              const std::string& state_dir) {
  // NFSv4 only (no rpcbind, NLM or rquota), graceless (a fresh server per VM has no clients to
  // wait for), state kept in the VM's directory.
  std::string out = fmt::format(
      "NFS_CORE_PARAM {{\n  Protocols = 4;\n  NFS_Port = {};\n  Bind_addr = {};\n"
      "  Enable_NLM = false;\n  Enable_RQUOTA = false;\n  Enable_UDP = false;\n}}\n"
      "NFSV4 {{\n  Graceless = true;\n  RecoveryBackend = fs;\n  RecoveryRoot = {};\n"
      "  Minor_Versions = 1, 2;\n}}\n",
      port, bind_address, state_dir);
  int id = 1;
  for (const auto& e : exports) {
    out += fmt::format(
        "EXPORT {{\n  Export_Id = {};\n  Path = \"{}\";\n  Pseudo = {};\n  Access_Type = NONE;\n"
        "  Squash = No_Root_Squash;\n  Protocols = 4;\n  SecType = sys;\n"
        "  CLIENT {{ Clients = {}; Access_Type = {}; }}\n  FSAL {{ Name = VFS; }}\n}}\n",
        id++, e.dir, e.pseudo, client, e.read_only ? "RO" : "RW");
  }
  return out;
}

Result<std::string> find_nfs_server() {
  for (const char* p : {"/usr/bin/ganesha.nfsd", "/usr/sbin/ganesha.nfsd"}) {
    if (::access(p, X_OK) == 0) return std::string(p);
  }
  return fail(ErrorCode::kUnavailable,
              "mode=nfs needs NFS-Ganesha on the host (apt-get install nfs-ganesha "
              "nfs-ganesha-vfs)");
}

Result<ChildProcess> spawn_nfs_server(const std::string& config, const std::string& address,
                                      int port, const std::string& log_path) {
  auto server = find_nfs_server();
  if (!server) return tl::unexpected<Error>(server.error());
  SpawnOptions opts;
  opts.argv = {*server,         "-F", "-f",      config, "-L", log_path, "-p",
               config + ".pid", "-N", "NIV_WARN"};
  auto child = ChildProcess::spawn(opts);
  if (!child) return tl::unexpected<Error>(child.error().wrap("start the NFS server"));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  for (;;) {
    auto st = child->try_wait();
    if (st && *st) {
      auto log = read_file(log_path);
      return fail(ErrorCode::kSystem,
                  fmt::format("the NFS server exited ({}): {}", (*st)->describe(),
                              log ? std::string(trim(*log)).substr(0, 400) : "?"));
    }
    if (tcp_port_open(address, port)) return child;
    if (std::chrono::steady_clock::now() > deadline) {
      return fail(ErrorCode::kTimeout,
                  fmt::format("the NFS server did not listen on {}:{} within 15 s", address, port));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<std::string> find_sftp_server() {
  for (const char* p : {"/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                        "/usr/libexec/sftp-server", "/usr/lib/ssh/sftp-server"}) {
    if (::access(p, X_OK) == 0) return std::string(p);
  }
  return fail(ErrorCode::kUnavailable,
              "mode=sshfs needs OpenSSH's sftp-server on the host (apt-get install "
              "openssh-sftp-server)");
}

std::vector<std::string> sftp_server_argv(const std::string& server,
                                          const std::vector<std::string>& libraries,
                                          const std::string& passwd, const std::string& dir,
                                          bool read_only) {
  std::vector<std::string> argv = {"bwrap",         "--unshare-all", "--die-with-parent",
                                   "--new-session", "--dev",         "/dev"};
  for (const auto& lib : libraries) argv.insert(argv.end(), {"--ro-bind", lib, lib});
  // sftp-server looks its user up: a one-line passwd naming only that user.
  argv.insert(argv.end(), {"--ro-bind", passwd, "/etc/passwd"});
  argv.insert(argv.end(),
              {"--ro-bind", server, server, read_only ? "--ro-bind" : "--bind", dir, "/volume",
               "--chdir", "/volume", server, "-d", "/volume", "-e", "-l", "ERROR"});
  if (read_only) argv.push_back("-R");
  return argv;
}

Result<ChildProcess> spawn_sftp_server(sys::CommandRunner& runner, const std::string& dir,
                                       bool read_only, int fd, const std::string& log_path) {
  auto server = find_sftp_server();
  if (!server) return tl::unexpected<Error>(server.error());
  if (::access("/usr/bin/bwrap", X_OK) != 0) {
    return fail(ErrorCode::kUnavailable,
                "mode=sshfs needs bubblewrap on the host (apt-get install bubblewrap)");
  }
  auto ldd = runner.run({"ldd", *server});
  if (!ldd) return tl::unexpected<Error>(ldd.error());
  std::vector<std::string> libraries;
  for (auto line : split(*ldd, '\n')) {
    std::string text(trim(line));  // the words below are views into it
    for (auto word : split(text, ' ')) {
      if (!word.empty() && word[0] == '/') {
        libraries.emplace_back(word);
        break;
      }
    }
  }
  UniqueFd log_fd(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log_fd) return fail_errno(fmt::format("open {}", log_path));
  auto passwd = log_path + ".passwd";
  FCVM_TRY(write_file_atomic(
      passwd, fmt::format("fcvm:x:{}:{}::/volume:/bin/false\n", ::geteuid(), ::getegid()), 0644));
  SpawnOptions opts;
  opts.argv = sftp_server_argv(*server, libraries, passwd, dir, read_only);
  FCVM_LOG(kInfo, "volume", "sftp server for {}: {}", dir, join(opts.argv, " "));
  opts.stdin_fd = fd;
  opts.stdout_fd = fd;
  opts.stderr_fd = log_fd.get();
  auto child = ChildProcess::spawn(opts);
  if (!child) return tl::unexpected<Error>(child.error().wrap("start sftp-server"));
  return child;
}

}  // namespace fcvm::storage
