// Block volumes in the guest: the host attaches one disk per --map (serial fcvm-vol<N>, an ext4
// image); the agent mounts it at k_volume_root/N before the container starts, podman binds that
// into the container (podman_run_argv), and everything is unmounted before power-off.
#include <fmt/format.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/agent.hpp"
#include "agent/console.hpp"
#include "agent/logic/podman.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/strings.hpp"

namespace fcvm::agent {

Result<> Agent::mount_volumes() {
  for (size_t i = 0; i < m_plan->volumes.size(); ++i) {
    const auto& v = m_plan->volumes[i];
    if (v.mode != "block") {
      return fail(
          ErrorCode::kUnavailable,
          fmt::format("volume {}: mode {} is not supported by this agent", v.guest_path, v.mode));
    }
    if (!m_options.system_changes) continue;  // tests on the host mount nothing
    auto dev = find_disk_by_serial(m_options.root, v.serial);
    if (!dev) return tl::unexpected<Error>(dev.error().wrap("volume " + v.guest_path));
    auto dir = volume_mount_dir(i);
    FCVM_TRY(make_dirs(dir, 0755));
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

void unmount_volumes(const std::string& root) {
  auto mounts = read_file(root + "/proc/mounts");
  if (!mounts) return;
  for (auto line : split(*mounts, '\n')) {
    auto fields = split(line, ' ');
    if (fields.size() < 2) continue;
    std::string dir(fields[1]);
    if (dir.rfind(k_volume_root, 0) != 0) continue;
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
