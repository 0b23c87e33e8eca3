// The image stage: registries configuration, then the image either from an archive disk
// (`podman load`) or from a registry (`podman image exists || podman pull`). Each podman call is
// a helper; the stage ends in image_ready() or fail_plan("image", ...).
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>

#include "agent/agent.hpp"
#include "agent/console.hpp"
#include "agent/logic/guest_config.hpp"
#include "agent/logic/podman.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::agent {

// /dev/vdX of the virtio disk whose serial is `serial` (QEMU: -device virtio-blk-pci,serial=S; at
// most 20 bytes). The error lists the disks there are: what one needs to debug a mismatch.
Result<std::string> find_disk_by_serial(const std::string& root, const std::string& serial) {
  std::error_code ec;
  std::string seen;
  std::filesystem::directory_iterator it(root + "/sys/block", ec), end;
  if (ec) return fail_errno("list /sys/block", ec.value());
  for (; it != end; it.increment(ec)) {
    auto name = it->path().filename().string();
    if (name.rfind("vd", 0) != 0) continue;
    auto s = read_file(it->path().string() + "/serial");
    std::string found = s ? std::string(trim(*s)) : std::string();
    if (found == serial) return root + "/dev/" + name;
    seen += fmt::format("{}{}={}", seen.empty() ? "" : ", ", name, found.empty() ? "-" : found);
  }
  return fail(ErrorCode::kNotFound, fmt::format("no virtio disk with serial '{}' (disks: {})",
                                                serial, seen.empty() ? "none" : seen));
}

namespace {
constexpr size_t k_stderr_in_errors = 4096;

std::string command_failure(const std::vector<std::string>& argv, const CommandOutput& out) {
  auto err = tail_lines(out.err, k_stderr_in_errors);
  return fmt::format("{} failed ({}){}{}", join(argv, " "), out.status.describe(),
                     err.empty() ? "" : ": ", err);
}

bool succeeded(const CommandOutput& out) { return out.status.exited && out.status.code == 0; }
}  // namespace

void Agent::start_image() {
  const auto& image = m_plan->image;
  auto conf = render_registries_conf(image);
  auto file = path(k_registries_conf);
  if (conf.empty()) {
    (void)remove_all(file);  // a disk booted before may keep an older plan's registries
  } else {
    auto r = make_dirs(file.substr(0, file.rfind('/'))).and_then([&] {
      return write_file_atomic(file, conf, 0644);
    });
    if (!r) {
      fail_plan("image", r.error().to_string());
      return;
    }
    sayf("wrote {} ({} mirrors, {} insecure registries)", k_registries_conf, image.mirrors.size(),
         image.insecure_registries.size());
  }
  if (!image.rootfs_serial.empty()) {
    if (auto r = mount_image_rootfs(); !r) {
      fail_plan("image", r.error().to_string());
      return;
    }
    image_ready(image.ref);
    return;
  }
  if (image.archive_serial.empty()) {
    pull_image();
    return;
  }
  auto disk = find_disk_by_serial(m_options.root, image.archive_serial);
  if (!disk) {
    fail_plan("image", disk.error().to_string());
    return;
  }
  sayf("image archive ({}) on {}", image.archive_format, *disk);
  load_archive(*disk, false);
}

// A stored image: its disk, read-only, at k_image_root, under an overlay at k_rootfs whose upper
// layer is on the VM's disk (both already there after a restart of the agent in a running guest).
Result<> Agent::mount_image_rootfs() {
  const auto& image = m_plan->image;
  auto dev = find_disk_by_serial(m_options.root, image.rootfs_serial);
  if (!dev) return tl::unexpected<Error>(dev.error());
  if (!m_options.system_changes) return {};  // tests on the host mount nothing
  auto mounts = read_file(path("/proc/mounts"));
  auto mounted = [&](const char* dir) {
    return mounts && mounts->find(fmt::format(" {} ", dir)) != std::string::npos;
  };
  if (!mounted(k_image_root)) {
    FCVM_TRY(make_dirs(path(k_image_root), 0755));
    auto fstype = image.rootfs_fstype.empty() ? std::string("ext4") : image.rootfs_fstype;
    if (::mount(dev->c_str(), path(k_image_root).c_str(), fstype.c_str(), MS_RDONLY | MS_NOATIME,
                nullptr) != 0) {
      return fail_errno(
          fmt::format("mount the image disk {} ({}) on {}", *dev, fstype, k_image_root));
    }
  }
  if (!mounted(k_rootfs)) {
    auto upper = fmt::format("{}/upper", k_rootfs_layer);
    auto work = fmt::format("{}/work", k_rootfs_layer);
    for (const auto& d : {upper, work, std::string(k_rootfs)}) FCVM_TRY(make_dirs(path(d), 0755));
    auto opts = fmt::format("lowerdir={},upperdir={},workdir={}", path(k_image_root), path(upper),
                            path(work));
    if (::mount("overlay", path(k_rootfs).c_str(), "overlay", 0, opts.c_str()) != 0) {
      return fail_errno(fmt::format("mount the container's root overlay ({})", opts));
    }
  }
  sayf("image {} from {} (read-only) under {}", image.ref, *dev, k_rootfs);
  return {};
}

// podman reads the archive from the block device directly (a tar; the zero padding after it
// reads as the end-of-archive marker). Should that fail, the archive is copied to a regular
// file (exactly archive_size bytes when known) and loaded from there.
void Agent::load_archive(const std::string& source, bool is_copy) {
  auto argv = podman_load_argv(source);
  run_helper("podman load", argv, [this, argv, source, is_copy](CommandOutput out) {
    if (is_copy) {
      (void)remove_all(m_archive_copy);
      m_archive_copy.clear();
    }
    if (!succeeded(out)) {
      if (is_copy) {
        fail_plan("image", command_failure(argv, out));
        return;
      }
      sayf("loading from the device failed, copying it to a file first");
      auto copy = path("/var/tmp/fcvm-image.tar");
      std::vector<std::string> dd = {"dd", "if=" + source, "of=" + copy, "bs=1M"};
      if (m_plan->image.archive_size > 0) {
        dd.push_back("iflag=count_bytes");
        dd.push_back(fmt::format("count={}", m_plan->image.archive_size));
      }
      auto first_error = command_failure(argv, out);
      m_archive_copy = copy;
      run_helper("copy archive", dd, [this, dd, copy, first_error](CommandOutput c) {
        if (!succeeded(c)) {
          (void)remove_all(copy);
          fail_plan("image", first_error + "; then " + command_failure(dd, c));
          return;
        }
        load_archive(copy, true);
      });
      return;
    }
    auto name = parse_loaded_image(out.out + "\n" + out.err);
    if (!name && !m_plan->image.ref.empty()) name = m_plan->image.ref;
    if (!name) {
      fail_plan("image", fmt::format("podman load printed no image name: {}",
                                     tail_lines(out.out, k_stderr_in_errors)));
      return;
    }
    image_ready(*name);
  });
}

void Agent::pull_image() {
  const auto ref = m_plan->image.ref;
  if (ref.empty()) {
    fail_plan("image", "the plan names no image");
    return;
  }
  std::vector<std::string> exists = {"podman", "image", "exists", ref};
  run_helper("podman image exists", exists, [this, ref](CommandOutput out) {
    if (succeeded(out)) {
      image_ready(ref);
      return;
    }
    std::vector<std::string> pull = {"podman", "pull", "--quiet", ref};
    run_helper("podman pull", pull, [this, pull, ref](CommandOutput p) {
      if (!succeeded(p)) {
        fail_plan("image", command_failure(pull, p));
        return;
      }
      image_ready(ref);
    });
  });
}

void Agent::image_ready(const std::string& image) {
  if (m_phase != Phase::kPreparing) return;
  send_event("image_ready", image);
  if (auto r = mount_volumes(); !r) {
    fail_plan("volumes", r.error().to_string());
    return;
  }
  if (!volumes_mounted()) {
    // sshfs mounts in the background: the loop starts the container once they are up.
    m_pending_image = image;
    m_volumes_deadline_ms = uptime_ms() + 30'000;
    return;
  }
  start_container(image);
}

}  // namespace fcvm::agent
