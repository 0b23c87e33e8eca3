// Volumes while the VM runs (`fcvm volume sync`, servers that die) and after it ended (block
// images written back, sshfs leftovers removed).
#include <fmt/format.h>
#include <unistd.h>

#include "fcvm/storage/volume.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/vm/monitor_impl.hpp"

namespace fcvm::vm {

Result<size_t> Monitor::sync_volumes_live() {
  size_t done = 0;
  const auto& maps = m_vm->options.volumes;
  for (size_t i = 0; i < maps.size(); ++i) {
    const auto& m = maps[i];
    if (m.mode != storage::VolumeMode::kBlock || !m.host_is_dir || m.read_only) continue;
    auto mount = fmt::format("/run/fcvm/volumes/{}", i);
    auto image = volume_image_path(m_rec, i);
    auto copy = fmt::format("{}/vol-{}.frozen", m_rec.dir, i);
    ::unlink(copy.c_str());
    // Frozen, the guest's file system is consistent on the disk (journal flushed) and stays so
    // while the host copies the image; the container's writes wait meanwhile.
    auto frozen = run_in_guest({"fsfreeze", "--freeze", mount}, std::chrono::seconds(30));
    if (!frozen || *frozen != 0) {
      return fail(ErrorCode::kSystem,
                  fmt::format("volume {}: the guest could not freeze it{}", m.guest,
                              frozen ? "" : ": " + frozen.error().message()));
    }
    auto copied = clone_file_data(image, copy, false, 0600);
    auto thawed = run_in_guest({"fsfreeze", "--unfreeze", mount}, std::chrono::seconds(30));
    if (!copied) return fail(copied.error().wrap("volume " + m.guest));
    if (!thawed || *thawed != 0) {
      FCVM_LOG(kError, "monitor", "volume {}: unfreeze failed", m.guest);
    }
    auto synced = storage::sync_image_to_dir(m_ctx.runner, copy, m.host,
                                             fmt::format("{}/vol-{}.sync", m_rec.dir, i),
                                             /*check_fs=*/false);
    ::unlink(copy.c_str());
    if (!synced) return fail(synced.error().wrap(fmt::format("write volume {} back", m.guest)));
    ++done;
  }
  return done;
}

void Monitor::check_volume_servers() {
  if (m_stop_deadline || m_error) return;
  for (size_t i = 0; i < m_vm->volume_servers.size(); ++i) {
    auto st = m_vm->volume_servers[i].try_wait();
    if (!st || !*st) continue;
    record_error(
        Error(ErrorCode::kSystem, fmt::format("a volume's server on the host exited ({}); see "
                                              "{}/sftp-*.log or {}/nfs.log",
                                              (*st)->describe(), m_rec.dir, m_rec.dir)));
    begin_stop(0);
    return;
  }
}

void Monitor::write_back_volumes() {
  const auto& maps = m_vm->options.volumes;
  for (size_t i = 0; i < maps.size(); ++i) {
    const auto& m = maps[i];
    if (m.mode == storage::VolumeMode::kSshfs && !m.read_only && m_rec.started_ms) {
      // sshfs renames a file deleted while open to .fuse_hidden*; with the VM gone nothing holds
      // those of this run any more.
      auto removed = storage::remove_fuse_hidden(m.host, *m_rec.started_ms);
      if (removed && *removed > 0) {
        FCVM_LOG(kInfo, "monitor", "volume {}: removed {} .fuse_hidden files", m.guest, *removed);
      }
      continue;
    }
    if (m.mode != storage::VolumeMode::kBlock || !m.host_is_dir) continue;
    auto image = volume_image_path(m_rec, i);
    if (!path_exists(image)) continue;
    auto clean = storage::ext4_image_clean(image);
    // Only a container that ended and a guest that unmounted the volume give a complete state;
    // otherwise the directory keeps the state it had when the VM started.
    if (m.read_only) {
      // nothing to write back
    } else if (!m_exit_code || !clean || !*clean) {
      FCVM_LOG(kWarn, "monitor",
               "volume {}: the guest did not end cleanly; {} keeps its state from before the start",
               m.guest, m.host);
    } else {
      m_timings.mark("volume_writing_back", m.host);
      auto synced = storage::sync_image_to_dir(m_ctx.runner, image, m.host,
                                               fmt::format("{}/vol-{}.sync", m_rec.dir, i));
      if (!synced) {
        auto e = synced.error().wrap(fmt::format("write volume {} back to {}", m.guest, m.host));
        FCVM_LOG(kError, "monitor", "{}", e.to_string());
        if (!m_error) m_error = e;  // the VM has ended: no phase to advance
      } else {
        m_timings.mark("volume_written_back", m.host);
      }
    }
    ::unlink(image.c_str());
  }
}

}  // namespace fcvm::vm
