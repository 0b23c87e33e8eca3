// Block volumes in the guest: the host attaches one disk per --map (serial fcvm-vol<N>, an ext4
// image); the agent mounts it at k_volume_root/N before the container starts, podman binds that
// into the container (podman_run_argv), and everything is unmounted before power-off.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/agent.hpp"
#include "agent/channel.hpp"
#include "agent/console.hpp"
#include "agent/logic/podman.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::agent {

namespace {
// Mount points of the given file system types under k_volume_root, from /proc/mounts.
std::vector<std::string> mounted_volumes(const std::string& root, bool fuse_only) {
  std::vector<std::string> out;
  auto mounts = read_file(root + "/proc/mounts");
  if (!mounts) return out;
  for (auto line : split(*mounts, '\n')) {
    auto fields = split(line, ' ');
    if (fields.size() < 3) continue;
    if (fields[1].rfind(k_volume_root, 0) != 0) continue;
    if (fuse_only && fields[2].rfind("fuse", 0) != 0) continue;
    out.emplace_back(fields[1]);
  }
  return out;
}
}  // namespace

Result<> Agent::mount_volumes() {
  for (size_t i = 0; i < m_plan->volumes.size(); ++i) {
    const auto& v = m_plan->volumes[i];
    if (v.mode != "block" && v.mode != "sshfs" && v.mode != "nfs") {
      return fail(
          ErrorCode::kUnavailable,
          fmt::format("volume {}: mode {} is not supported by this agent", v.guest_path, v.mode));
    }
    if (!m_options.system_changes) continue;  // tests on the host mount nothing
    auto dir = volume_mount_dir(i);
    FCVM_TRY(make_dirs(dir, 0755));
    if (v.mode == "sshfs") {
      FCVM_TRY(start_sshfs(i));
      continue;
    }
    if (v.mode == "nfs") {
      // The kernel's NFS client speaks to the host's per-VM server; text options carry the
      // address and port (no mount helper in the guest).
      unsigned long nfs_flags = 0;
      if (v.read_only) nfs_flags |= MS_RDONLY;
      if (::mount(v.source.c_str(), dir.c_str(), "nfs4", nfs_flags, v.options.c_str()) != 0) {
        return fail_errno(
            fmt::format("volume {}: mount nfs {} ({})", v.guest_path, v.source, v.options));
      }
      sayf("volume {} ({}) mounted from nfs {}", v.guest_path, dir, v.source);
      continue;
    }
    auto dev = find_disk_by_serial(m_options.root, v.serial);
    if (!dev) return tl::unexpected<Error>(dev.error().wrap("volume " + v.guest_path));
    unsigned long flags = MS_NOATIME;
    if (v.read_only) flags |= MS_RDONLY;
    if (::mount(dev->c_str(), dir.c_str(), "ext4", flags, nullptr) != 0) {
      return fail_errno(fmt::format("volume {}: mount {} on {}", v.guest_path, *dev, dir));
    }
    sayf("volume {} ({}{}) mounted from {}", v.guest_path, dir, v.read_only ? ", read-only" : "",
         *dev);
  }
  return {};
}

// sshfs in slave mode speaks SFTP on its stdin/stdout: both are the volume's own virtio-serial
// port, at whose host end a sandboxed sftp-server serves the directory. The data never passes
// through this agent.
Result<> Agent::start_sshfs(size_t index) {
  const auto& v = m_plan->volumes[index];
  auto dev = find_serial_port(v.serial);
  if (!dev) return tl::unexpected<Error>(dev.error().wrap("volume " + v.guest_path));
  UniqueFd port(::open(dev->c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!port) return fail_errno(fmt::format("volume {}: open {}", v.guest_path, *dev));
  auto log_path = fmt::format("/run/fcvm/sshfs-{}.log", index);
  UniqueFd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  SpawnOptions o;
  o.argv = {"sshfs", "-f", "-o", "slave", "-o", "allow_other", "-o", "dir_cache=no"};
  if (v.read_only) o.argv.insert(o.argv.end(), {"-o", "ro"});
  o.argv.insert(o.argv.end(), {"fcvm:/volume", volume_mount_dir(index)});
  o.stdin_fd = port.get();
  o.stdout_fd = port.get();
  o.stderr_fd = log ? log.get() : -1;
  auto child = ChildProcess::spawn(o);
  if (!child) return tl::unexpected<Error>(child.error().wrap("volume " + v.guest_path));
  sayf("volume {}: sshfs on {} (pid {})", v.guest_path, *dev, child->pid());
  m_volume_procs.push_back(std::move(*child));
  return {};
}

bool Agent::volumes_mounted() const {
  size_t want = 0;
  for (const auto& v : m_plan->volumes) want += v.mode == "sshfs" ? 1 : 0;
  if (want == 0 || !m_options.system_changes) return true;
  return mounted_volumes(m_options.root, true).size() >= want;
}

// Called from the loop while the container waits for its sshfs volumes.
void Agent::check_volumes() {
  if (m_pending_image.empty() || m_phase != Phase::kPreparing) return;
  if (volumes_mounted()) {
    auto image = std::move(m_pending_image);
    m_pending_image.clear();
    send_event("volumes_ready");
    start_container(image);
    return;
  }
  for (size_t i = 0; i < m_volume_procs.size(); ++i) {
    auto st = m_volume_procs[i].try_wait();
    if (st && *st) {
      auto log = read_file("/run/fcvm/sshfs-" + std::to_string(i) + ".log");
      m_pending_image.clear();
      fail_plan("volumes", fmt::format("sshfs exited ({}): {}", (*st)->describe(),
                                       log ? std::string(trim(*log)) : std::string("?")));
      return;
    }
  }
  if (uptime_ms() > m_volumes_deadline_ms) {
    m_pending_image.clear();
    fail_plan("volumes", "the sshfs volumes were not mounted within 30 s");
  }
}

void Agent::finish_volumes() {
  if (!m_options.system_changes) return;
  unmount_volumes(m_options.root);
  for (auto& p : m_volume_procs) (void)p.wait_for(std::chrono::seconds(5));
  m_volume_procs.clear();
}

void unmount_volumes(const std::string& root) {
  for (const auto& dir : mounted_volumes(root, false)) {
    ::sync();
    if (::umount2(dir.c_str(), 0) == 0) {
      sayf("volume {} unmounted", dir);
    } else {
      // Busy (a process the container left behind): detach it; the image then is not clean and
      // the host keeps its directory as it was.
      sayf("umount {}: {}; detaching it", dir, std::strerror(errno));
      (void)::umount2(dir.c_str(), MNT_DETACH);
    }
  }
}

}  // namespace fcvm::agent
