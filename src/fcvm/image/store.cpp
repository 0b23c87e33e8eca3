#include "fcvm/image/store.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "fcvm/state/vm_store.hpp"
#include "fcvm/storage/volume.hpp"
#include "fcvm/sys/host.hpp"
#include "fcvm/sys/process_identity.hpp"
#include "fcvm/util/child_process.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/rollback.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/util/unique_fd.hpp"

namespace fcvm::image {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto k_fetch_timeout = std::chrono::minutes(30);
constexpr auto k_build_timeout = std::chrono::minutes(15);
constexpr uint64_t k_mib = 1024 * 1024;

// The last lines of a helper's stderr: what one needs to see why it failed. Go tools log
// `time=... level=fatal msg="..."`: the message alone is kept.
std::string last_lines(const std::string& text, size_t n = 3) {
  auto lines = split(trim(text), '\n');
  std::string out;
  size_t first = lines.size() > n ? lines.size() - n : 0;
  for (size_t i = first; i < lines.size(); ++i) {
    std::string line(trim(lines[i]));
    if (auto m = line.find(" msg=\""); m != std::string::npos && line.back() == '"') {
      line = line.substr(m + 6, line.size() - m - 7);
      std::string unescaped;
      for (size_t k = 0; k < line.size(); ++k) {
        if (line[k] == '\\' && k + 1 < line.size()) ++k;
        unescaped += line[k];
      }
      line = unescaped;
    }
    if (!out.empty()) out += "; ";
    out += line;
  }
  return out;
}

Result<CommandOutput> run_tool(const std::vector<std::string>& argv,
                               std::chrono::milliseconds timeout) {
  FCVM_LOG(kDebug, "image", "{}", join(argv, " "));
  auto out = run_capture(argv, timeout);
  if (!out) return tl::unexpected<Error>(out.error());
  return out;
}

bool ok(const CommandOutput& out) { return out.status.exited && out.status.code == 0; }

// How a user without root runs the unpacking tools: in a user namespace where it is root, with
// its subordinate ids mapped when it has some (then owners are kept exactly); without them every
// file of the image belongs to root in the VM.
struct Unprivileged {
  std::vector<std::string> prefix{};  // empty: we are root
  bool rootless_unpack = false;       // umoci --rootless (no subordinate ids)
};

bool has_subids(const std::string& file, uid_t id, const std::string& name) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    auto first = line.substr(0, line.find(':'));
    if (first == name || first == std::to_string(id)) return true;
  }
  return false;
}

Unprivileged unprivileged() {
  Unprivileged u;
  if (::geteuid() == 0) return u;
  std::string name;
  if (auto* pw = ::getpwuid(::geteuid())) name = pw->pw_name;
  bool subids =
      has_subids("/etc/subuid", ::geteuid(), name) && has_subids("/etc/subgid", ::getegid(), name);
  u.prefix = {"unshare", "--map-root-user"};
  if (subids) {
    u.prefix.push_back("--map-auto");
  } else {
    u.rootless_unpack = true;
  }
  u.prefix.push_back("--");
  return u;
}

std::vector<std::string> with(const Unprivileged& u, std::vector<std::string> argv) {
  argv.insert(argv.begin(), u.prefix.begin(), u.prefix.end());
  return argv;
}

// Size and change time of an archive: a different file at the same path is imported again.
std::string archive_stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return fmt::format("{}:{}:{}:{}.{}", st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec,
                     st.st_mtim.tv_nsec);
}

std::string skopeo_source(const storage::ImageRef& ref) {
  switch (ref.source) {
    case storage::ImageSource::kRegistry:
      return "docker://" + store_name(ref);
    case storage::ImageSource::kOciArchive:
      return "oci-archive:" + ref.archive_path;
    case storage::ImageSource::kDockerArchive:
      return "docker-archive:" + ref.archive_path;
  }
  return {};
}

bool insecure(const PullRequest& request) {
  if (request.ref.source != storage::ImageSource::kRegistry) return false;
  if (request.ref.registry_on_loopback()) return true;
  return std::find(request.insecure_registries.begin(), request.insecure_registries.end(),
                   request.ref.domain) != request.insecure_registries.end();
}

// skopeo's failure, said the way a user can act on it.
Error fetch_error(const PullRequest& request, const CommandOutput& out) {
  auto msg = last_lines(out.err);
  auto has = [&](std::string_view s) { return out.err.find(s) != std::string::npos; };
  const auto& ref = request.ref;
  if (ref.source != storage::ImageSource::kRegistry) {
    return Error(ErrorCode::kInvalidInput,
                 fmt::format("{} is not a readable {}: {}", ref.archive_path,
                             storage::ImageRef::source_name(ref.source), msg));
  }
  if (has("manifest unknown") || has("name unknown") || has("not found")) {
    return Error(ErrorCode::kNotFound,
                 fmt::format("the registry has no image {}: {}", store_name(ref), msg));
  }
  if (has("connection refused") || has("no such host") || has("i/o timeout") ||
      has("network is unreachable") || has("dial tcp")) {
    return Error(ErrorCode::kUnavailable,
                 fmt::format("cannot reach the registry of {}: {}", store_name(ref), msg));
  }
  return Error(ErrorCode::kSystem, fmt::format("skopeo copy failed: {}", msg));
}

// Exclusive lock on one image id, held while its disk is built or removed.
Result<UniqueFd> lock_image(const StoreLayout& layout, const std::string& hex, bool wait) {
  auto path = fmt::format("{}/{}.lock", layout.locks(), hex);
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return fail_errno(fmt::format("open {}", path));
  for (;;) {
    if (::flock(fd.get(), LOCK_EX | (wait ? 0 : LOCK_NB)) == 0) return fd;
    if (errno == EINTR) continue;
    return fail_errno(fmt::format("lock {}", path));
  }
}

Result<> make_store_dirs(const StoreLayout& layout) {
  for (const auto& d : {layout.root, layout.disks(), layout.tmp(), layout.locks()}) {
    FCVM_TRY(make_dirs(d, 0700));
  }
  return {};
}

int64_t file_blocks_bytes(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_blocks) * 512 : 0;
}

Result<storage::TreeSize> make_disk(const Unprivileged& u, const std::vector<std::string>& trees,
                                    const std::string& disk, const Progress& progress);

// Builds the disk of the image in `layout_dir` (an OCI layout) into `disk`.
Result<storage::TreeSize> build_disk(const std::string& work, const std::string& layout_dir,
                                     const std::string& disk, const Progress& progress) {
  auto u = unprivileged();
  auto bundle = work + "/bundle";
  progress("unpacking");
  std::vector<std::string> unpack = {"umoci", "unpack"};
  if (u.rootless_unpack) unpack.push_back("--rootless");
  unpack.insert(unpack.end(), {"--image", layout_dir + ":img", bundle});
  auto out = run_tool(with(u, unpack), k_build_timeout);
  if (!out) return tl::unexpected<Error>(out.error().wrap("unpack"));
  if (!ok(*out)) {
    return fail(ErrorCode::kSystem, fmt::format("umoci unpack failed: {}", last_lines(out->err)));
  }
  return make_disk(u, {bundle + "/rootfs"}, disk, progress);
}

// mke2fs -d of a tree into `disk`: sparse, without a journal (it is never written), sized for
// what the tree holds. Several trees are stacked (top first) by an overlay mount in a mount
// namespace of mke2fs's own.
Result<storage::TreeSize> make_disk(const Unprivileged& u, const std::vector<std::string>& trees,
                                    const std::string& disk, const Progress& progress) {
  storage::TreeSize size{};
  for (const auto& tree : trees) {
    auto one = storage::tree_size(tree);
    if (!one) return tl::unexpected<Error>(one.error());
    size.bytes += one->bytes;
    size.inodes += one->inodes;
  }
  // The disk is sparse and never written: room costs nothing on the host.
  uint64_t bytes = size.bytes + size.bytes / 4 + size.inodes * 512 + 64 * k_mib;
  bytes = (bytes + k_mib - 1) / k_mib * k_mib;
  uint64_t inodes = size.inodes + size.inodes / 4 + 1024;
  progress("building the disk");
  auto mkfs = [&](const std::string& tree) -> std::vector<std::string> {
    return {"mke2fs",
            "-q",
            "-F",
            "-t",
            "ext4",
            "-O",
            "^has_journal,^resize_inode",
            "-m",
            "0",
            "-N",
            std::to_string(inodes),
            "-L",
            "fcvm-image",
            "-d",
            tree,
            disk,
            fmt::format("{}k", bytes / 1024)};
  };
  std::vector<std::string> argv;
  if (trees.size() == 1) {
    argv = with(u, mkfs(trees[0]));
  } else {
    if (!u.prefix.empty()) {
      return fail(ErrorCode::kUnavailable, "merging image layers needs root (an overlay mount)");
    }
    auto merged = disk + ".merged";
    FCVM_TRY(make_dirs(merged, 0700));
    // The shell gets the values as arguments, never as code.
    argv = {"unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-ec",
            "lower=$1; dir=$2; shift 2; mount -t overlay -o ro,lowerdir=\"$lower\" overlay "
            "\"$dir\"; exec \"$@\"",
            "sh",
            join(trees, ":"),
            merged};
    for (auto& a : mkfs(merged)) argv.push_back(std::move(a));
  }
  auto out = run_tool(argv, k_build_timeout);
  if (trees.size() > 1) ::rmdir((disk + ".merged").c_str());
  if (!out) return tl::unexpected<Error>(out.error().wrap("mke2fs"));
  if (!ok(*out)) {
    return fail(ErrorCode::kSystem, fmt::format("mke2fs failed: {}", last_lines(out->err)));
  }
  return size;
}

// Removes a work directory; files the user namespace created may need it to be removed.
void remove_work(const std::string& work) {
  if (!path_exists(work)) return;
  auto u = unprivileged();
  if (!u.prefix.empty()) (void)run_capture(with(u, {"rm", "-rf", "--", work}), 5min);
  (void)remove_all(work);
}

// One build per image: under its lock, a disk already there is complete (it was renamed into
// place whole). `build` writes the disk into the file it is given (in the work directory).
Result<state::ImageRecord> store_image(
    const StoreLayout& layout, state::ImageStore& rows, state::ImageRecord rec,
    const std::string& name, const std::string& stamp, const std::string& work,
    const std::function<Result<storage::TreeSize>(const std::string&)>& build) {
  auto lock = lock_image(layout, digest_hex(rec.id), /*wait=*/true);
  if (!lock) return tl::unexpected<Error>(lock.error());
  auto existing = rows.get(rec.id);
  if (!existing) return tl::unexpected<Error>(existing.error());
  if (*existing && path_exists((*existing)->disk)) {
    FCVM_TRY(rows.add(**existing, name, stamp));
    auto named = rows.get(rec.id);
    if (!named) return tl::unexpected<Error>(named.error());
    return std::move(**named);
  }
  if (!path_exists(rec.disk)) {
    auto tmp_disk = work + "/disk.ext4";
    auto size = build(tmp_disk);
    if (!size) return tl::unexpected<Error>(size.error());
    rec.content_bytes = static_cast<int64_t>(size->bytes);
    if (::chmod(tmp_disk.c_str(), 0444) != 0) return fail_errno("chmod " + tmp_disk);
    if (::rename(tmp_disk.c_str(), rec.disk.c_str()) != 0) {
      return fail_errno(fmt::format("move the disk to {}", rec.disk));
    }
  }
  rec.size_bytes = file_blocks_bytes(rec.disk);
  if (auto r = rows.add(rec, name, stamp); !r) {
    ::unlink(rec.disk.c_str());
    return tl::unexpected<Error>(r.error());
  }
  auto stored = rows.get(rec.id);
  if (!stored) return tl::unexpected<Error>(stored.error());
  if (!*stored) return fail(ErrorCode::kInternal, "the image row vanished");
  return std::move(**stored);
}

}  // namespace

std::string StoreLayout::disk_for(const std::string& id) const {
  return fmt::format("{}/{}.ext4", disks(), digest_hex(id));
}

std::string store_name(const storage::ImageRef& ref) {
  if (ref.source != storage::ImageSource::kRegistry) {
    return fmt::format("{}:{}", storage::ImageRef::source_name(ref.source), ref.archive_path);
  }
  auto name = ref.guest_ref();
  if (ref.tag.empty() && ref.digest.empty()) name += ":latest";
  return name;
}

void reap(const StoreLayout& layout, state::ImageStore& rows) {
  std::error_code ec;
  for (fs::directory_iterator it(layout.tmp(), ec), end; !ec && it != end; it.increment(ec)) {
    // PID-START-RANDOM: the pull that made it, by identity.
    auto name = it->path().filename().string();  // split() returns views into it
    auto parts = split(name, '-');
    if (parts.size() != 3) continue;
    auto pid = parse_int(parts[0], 1, INT32_MAX);
    auto start = parse_int(parts[1], 0, INT64_MAX);
    if (!pid || !start) continue;
    sys::ProcessIdentity owner{static_cast<pid_t>(*pid), static_cast<unsigned long long>(*start),
                               sys::boot_id()};
    if (owner.alive()) continue;
    FCVM_LOG(kInfo, "image", "removing {} (its pull ended)", it->path().string());
    remove_work(it->path().string());
  }
  for (fs::directory_iterator it(layout.disks(), ec), end; !ec && it != end; it.increment(ec)) {
    auto file = it->path().filename().string();
    if (file.size() != 64 + 5 || file.substr(64) != ".ext4") continue;
    auto hex = file.substr(0, 64);
    auto lock = lock_image(layout, hex, /*wait=*/false);
    if (!lock) continue;  // a pull or rmi is at work on it
    auto row = rows.get("sha256:" + hex);
    if (!row || *row) continue;
    FCVM_LOG(kInfo, "image", "removing {} (no image names it)", it->path().string());
    ::unlink(it->path().c_str());
  }
}

Result<state::ImageRecord> pull(const StoreLayout& layout, state::ImageStore& rows,
                                const PullRequest& request, const Progress& progress) {
  FCVM_TRY(make_store_dirs(layout));
  reap(layout, rows);
  auto me = sys::ProcessIdentity::of(::getpid());
  auto work = fmt::format("{}/{}-{}-{}", layout.tmp(), me.pid, me.start_time, sys::random_hex(4));
  FCVM_TRY(make_dirs(work, 0700));
  Rollback cleanup;
  cleanup.add("work directory", [work] { remove_work(work); });

  // 1. Fetch into an OCI layout (skopeo checks every blob's digest).
  progress("fetching");
  auto layout_dir = work + "/layout";
  // skopeo unpacks archives in its temporary directory: the work directory, which goes with it.
  std::vector<std::string> copy = {"skopeo", "--tmpdir", work, "copy", "--quiet"};
  if (insecure(request)) copy.push_back("--src-tls-verify=false");
  if (!request.authfile.empty()) copy.insert(copy.end(), {"--src-authfile", request.authfile});
  copy.insert(copy.end(), {skopeo_source(request.ref), "oci:" + layout_dir + ":img"});
  auto out = run_tool(copy, k_fetch_timeout);
  if (!out) return tl::unexpected<Error>(out.error().wrap("fetch"));
  if (!ok(*out)) return tl::unexpected<Error>(fetch_error(request, *out));
  auto image = read_oci_layout(layout_dir);
  if (!image) return tl::unexpected<Error>(image.error());

  state::ImageRecord rec;
  rec.id = image->config_digest;
  rec.disk = layout.disk_for(rec.id);
  rec.format = "ext4";
  rec.layers = image->layers;
  rec.manifest_digest = image->manifest_digest;
  rec.config_json = image->config_json;
  rec.created_ms = state::now_ms();
  auto name = store_name(request.ref);
  auto stamp = request.ref.source == storage::ImageSource::kRegistry
                   ? std::string()
                   : archive_stamp(request.ref.archive_path);

  // 2. One build per image.
  return store_image(layout, rows, rec, name, stamp, work, [&](const std::string& disk) {
    return build_disk(work, layout_dir, disk, progress);
  });
}

Result<state::ImageRecord> import_layers(const StoreLayout& layout, state::ImageStore& rows,
                                         const LayersImport& request, const Progress& progress) {
  if (request.layers.empty()) return fail(ErrorCode::kInvalidInput, "an image needs a layer");
  for (const auto& l : request.layers) {
    std::error_code ec;
    if (!fs::is_directory(l, ec)) {
      return fail(ErrorCode::kInvalidInput, fmt::format("image layer {} is not a directory", l));
    }
  }
  FCVM_TRY(make_store_dirs(layout));
  state::ImageRecord rec;
  rec.id = request.id;
  rec.disk = layout.disk_for(rec.id);
  rec.format = "ext4";
  rec.layers = static_cast<int64_t>(request.layers.size());
  rec.config_json = request.config_json;
  rec.created_ms = state::now_ms();
  auto me = sys::ProcessIdentity::of(::getpid());
  auto work = fmt::format("{}/{}-{}-{}", layout.tmp(), me.pid, me.start_time, sys::random_hex(4));
  FCVM_TRY(make_dirs(work, 0700));
  Rollback cleanup;
  cleanup.add("work directory", [work] { remove_work(work); });
  return store_image(layout, rows, rec, request.name, {}, work, [&](const std::string& disk) {
    return make_disk(unprivileged(), request.layers, disk, progress);
  });
}

Result<state::ImageRecord> ensure(const StoreLayout& layout, state::ImageStore& rows,
                                  const PullRequest& request, const Progress& progress) {
  auto named = rows.by_name(store_name(request.ref));
  if (!named) return tl::unexpected<Error>(named.error());
  if (*named && path_exists((*named)->first.disk)) {
    bool fresh = request.ref.source == storage::ImageSource::kRegistry ||
                 (*named)->second == archive_stamp(request.ref.archive_path);
    if (fresh) return std::move((*named)->first);
  }
  return pull(layout, rows, request, progress);
}

Result<> remove(const StoreLayout& layout, state::ImageStore& rows,
                const state::ImageRecord& image) {
  auto lock = lock_image(layout, digest_hex(image.id), /*wait=*/true);
  if (!lock) return tl::unexpected<Error>(lock.error());
  FCVM_TRY(rows.remove(image.id));
  if (::unlink(image.disk.c_str()) != 0 && errno != ENOENT) {
    return fail_errno(fmt::format("remove {}", image.disk));
  }
  return {};
}

}  // namespace fcvm::image
