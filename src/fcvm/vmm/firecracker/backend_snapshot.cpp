// FirecrackerBackend snapshots.
//
// create: PATCH /vm Paused (unless paused) -> PATCH /drives/{id} to the caller's copies (when
//         given) -> PUT /snapshot/create {Full} -> PATCH /drives/{id} back to the VM's own files.
//         The state file then names the copies, which a clone can open while loading even after
//         the source VM is gone. The guest stays paused.
// load:   a fresh process -> PUT /logger, /metrics, /serial -> PUT /snapshot/load {mem_backend
// File,
//         resume_vm false, network_overrides eth0 -> spec.net->tap, vsock_override -> this VM's
//         socket (v1.16 on)} -> PATCH /drives/{id} for each of spec.disks (the state file names the
//         source VM's disk paths; a clone swaps in its own copies before the guest runs again) ->
//         PUT /mmds (spec.mmds_json, when there is a network) -> PATCH /vm Resumed if asked.
// Firecracker opens the disk paths recorded in the snapshot while loading it, so those files must
// still exist at that moment.
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>

#include "fcvm/util/fs.hpp"
#include "fcvm/util/rollback.hpp"
#include "fcvm/vmm/firecracker/backend.hpp"
#include "fcvm/vmm/firecracker/models.hpp"

namespace fcvm::vmm::firecracker {
namespace {

nlohmann::json partial_drive(const std::string& drive_id, const std::string& path_on_host) {
  // PartialDrive: only drive_id and the new path.
  return {{"drive_id", drive_id}, {"path_on_host", path_on_host}};
}

}  // namespace

Result<> FirecrackerBackend::snapshot_create(const std::string& mem_path,
                                             const std::string& state_path,
                                             const std::vector<std::string>& disk_paths) {
  if (!m_vmm || !running()) {
    return fail(ErrorCode::kInternal, "snapshot: firecracker is not running");
  }
  if (!disk_paths.empty() && disk_paths.size() != m_spec.disks.size()) {
    return fail(ErrorCode::kInternal, "snapshot: one path per disk expected");
  }
  if (!m_paused) FCVM_TRY(pause());
  // The same planning (drive ids and order) over the VM's disks and over their copies.
  auto drives = plan_drives(m_spec.disks);
  auto copied_disks = m_spec.disks;
  for (size_t i = 0; i < disk_paths.size(); ++i) copied_disks[i].path = disk_paths[i];
  auto copies = plan_drives(copied_disks);
  auto repoint = [&](bool to_copies) -> Result<> {
    for (size_t i = 0; i < drives.size() && !disk_paths.empty(); ++i) {
      auto path = drive_path(drives[i].drive_id, to_copies ? copies[i].disk : drives[i].disk);
      if (!path) return fail(path.error().wrap("disk"));
      FCVM_TRY(
          api().patch("/drives/" + drives[i].drive_id, partial_drive(drives[i].drive_id, *path)));
    }
    return {};
  };
  Rollback back;
  if (!disk_paths.empty()) {
    back.add("point the drives back at the VM's disks", [&] { (void)repoint(false); });
    FCVM_TRY(repoint(true));
  }
  SnapshotCreateParams params;
  params.snapshot_type = SnapshotType::kFull;
  params.mem_file_path = mem_path;
  params.snapshot_path = state_path;
  if (m_vmm->jail) {
    // Written inside the jail, then linked to where the caller wants them.
    params.mem_file_path = "/snapshot.mem";
    params.snapshot_path = "/snapshot.state";
  }
  auto timeouts = m_options.api_timeouts;
  timeouts.total = m_options.snapshot_timeout;
  FCVM_TRY(api().call("PUT", SnapshotCreateParams::path(), params.to_json(), timeouts));
  if (m_vmm->jail) {
    for (const auto& [inside, outside] :
         {std::pair{params.mem_file_path, mem_path}, std::pair{params.snapshot_path, state_path}}) {
      auto host = m_vmm->jail->host_path(inside);
      if (::link(host.c_str(), outside.c_str()) != 0 && errno != EEXIST) {
        return fail_errno(fmt::format("link {} to {}", host, outside));
      }
      ::unlink(host.c_str());
    }
  }
  back.commit();
  if (!disk_paths.empty()) FCVM_TRY_CTX(repoint(false), "point the drives back at the VM's disks");
  return {};
}

Result<> FirecrackerBackend::snapshot_load(const VmSpec& spec, const std::string& mem_path,
                                           const std::string& state_path, bool resume_guest) {
  if (m_vmm) return fail(ErrorCode::kInternal, "firecracker backend already started");
  FCVM_TRY(validate(spec, /*booting=*/false));
  Rollback rollback;
  FCVM_TRY(launch(spec, rollback));
  FCVM_TRY(configure_console(spec, rollback));

  SnapshotLoadParams params;
  auto state = vmm_path(state_path, false, true);
  if (!state) return fail(state.error().wrap("snapshot state"));
  auto mem = vmm_path(mem_path, false);
  if (!mem) return fail(mem.error().wrap("snapshot memory"));
  // Jailed, the snapshot names its drives /drive-<id>: this VM's own disks answer to those names
  // when the load opens them.
  for (const auto& planned : plan_drives(spec.disks)) {
    auto path = drive_path(planned.drive_id, planned.disk);
    if (!path) return fail(path.error().wrap("disk"));
  }
  params.snapshot_path = *state;
  params.mem_backend = {MemoryBackend::Type::kFile, *mem};
  params.resume_vm = false;
  if (spec.net) params.network_overrides.push_back({k_iface_id, spec.net->tap});
  ::unlink(m_paths.vsock_bound.c_str());  // Firecracker binds it again while loading
  // Before v1.16 the field is refused; the recorded name is relative, so it lands here anyway.
  if (has_vsock_override(m_vmm->version)) params.vsock_override_uds_path = m_paths.vsock_vmm;
  auto timeouts = m_options.api_timeouts;
  timeouts.total = m_options.snapshot_timeout;
  FCVM_TRY(api().call("PUT", SnapshotLoadParams::path(), params.to_json(), timeouts));
  rollback.add("remove " + m_paths.vsock_bound,
               [path = m_paths.vsock_bound] { ::unlink(path.c_str()); });
  m_paused = true;

  // Same drive ids as start() gave them, so the restored devices are found by id.
  for (const auto& planned : plan_drives(spec.disks)) {
    auto path = drive_path(planned.drive_id, planned.disk);
    if (!path) return fail(path.error().wrap("disk"));
    FCVM_TRY(api().patch("/drives/" + planned.drive_id, partial_drive(planned.drive_id, *path)));
  }
  // The MMDS data store is not part of a snapshot: the clone gets its own plan.
  if (spec.net && !spec.mmds_json.empty()) {
    auto document = mmds_document(spec.mmds_json);
    if (!document) return tl::unexpected<Error>(document.error());
    FCVM_TRY(api().put(mmds_path(), *document));
  }
  if (resume_guest) FCVM_TRY(resume());
  rollback.commit();
  return {};
}

}  // namespace fcvm::vmm::firecracker
