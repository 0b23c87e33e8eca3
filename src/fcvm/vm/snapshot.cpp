#include "fcvm/vm/snapshot.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <thread>

#include "fcvm/agent_proto/messages.hpp"
#include "fcvm/storage/disk.hpp"
#include "fcvm/sys/host.hpp"
#include "fcvm/util/fs.hpp"
#include "fcvm/util/log.hpp"
#include "fcvm/util/rollback.hpp"
#include "fcvm/util/strings.hpp"
#include "fcvm/vm/lifecycle.hpp"
#include "fcvm/vmm/registry.hpp"

namespace fcvm::vm {

using namespace std::chrono_literals;

namespace {

Result<std::string> canonical(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::canonical(path, ec);
  if (ec) return fail_errno(fmt::format("resolve {}", path), ec.value());
  return p.string();
}

int64_t space_used(const std::string& dir) {
  int64_t total = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    struct stat st {};
    if (::lstat(entry.path().c_str(), &st) == 0) total += static_cast<int64_t>(st.st_blocks) * 512;
  }
  return total;
}

// Removes a snapshot directory, read-only or not.
// A killed writer's helper can outlive it by a moment: QEMU writes the device state through
// `exec:cat > state.bin`, and that cat (or the shell creating its file) may still create the file
// while the directory is being removed. Removal is tried again until the directory is gone
// (bounded: the helper ends as soon as the dead QEMU's pipe closes).
Result<> remove_snapshot_dir(const std::string& dir) {
  ::chmod(dir.c_str(), 0700);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    auto r = remove_all(dir);
    if (r || r.error().sys_errno() != ENOTEMPTY || std::chrono::steady_clock::now() > deadline) {
      return r;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

SnapshotFiles snapshot_files(const state::SnapshotRecord& snap) {
  const auto& d = snap.dir;
  auto traits = vmm::backend_traits(snap.backend);
  auto disk = traits ? (*traits)->snapshot.disk_file : std::string("disk.qcow2");
  return {d + "/memory.ram", d + "/state.bin",  d + "/" + disk,
          d + "/vmlinuz",    d + "/initrd.img", d + "/image.tar"};
}

Result<state::SnapshotRecord> take_snapshot(Context& ctx, state::VmStore& store,
                                            const state::VmRecord& rec, VmResources& vm,
                                            const std::string& name, bool resume_after) {
  FCVM_TRY(validate_snapshot_name(name));
  if (!vm.options.volumes.empty()) {
    return fail(
        ErrorCode::kInvalidInput,
        fmt::format("VM {} has --map volumes, which snapshots do not hold (yet)", rec.name));
  }
  state::SnapshotStore snaps(store.db());
  state::SnapshotRecord s;
  s.id = sys::random_hex(32);
  s.name = name;
  s.source_id = rec.id;
  s.source_name = rec.name;
  s.image = rec.image;
  s.backend = std::string(vm.backend->name());
  s.vcpus = vm.options.vcpus;
  s.mem_mib = vm.options.mem_mib;
  FCVM_TRY_ASSIGN(const auto* traits, vmm::backend_traits(s.backend));
  auto kernel = canonical(ctx.paths.kernel_for(traits->kernel));
  if (!kernel) return tl::unexpected<Error>(kernel.error());
  s.kernel = *kernel;
  auto base = canonical(ctx.paths.rootfs());
  if (!base) return tl::unexpected<Error>(base.error());
  s.base_disk = *base;
  s.options_json = rec.options_json;
  s.image_id = rec.image_id;
  s.plan_json = agent_proto::to_json(vm.plan).dump();
  s.dir = ctx.paths.snapshots_dir() + "/" + s.id;
  s.creator = sys::ProcessIdentity::of(::getpid());
  s.created_ms = state::now_ms();
  auto files = snapshot_files(s);

  // The row comes first: it reserves the name, stays `creating` (unlisted) until every file is
  // written, and tells reconcile_snapshots what to remove if this process dies meanwhile.
  FCVM_TRY(make_dirs(ctx.paths.snapshots_dir(), 0700));
  FCVM_TRY(snaps.insert(s));
  Rollback undo;
  undo.add("remove the snapshot row", [&snaps, id = s.id] { (void)snaps.remove(id); });
  if (::mkdir(s.dir.c_str(), 0700) != 0) return fail_errno(fmt::format("create {}", s.dir));
  undo.add("remove " + s.dir, [dir = s.dir] { (void)remove_snapshot_dir(dir); });

  // The guest stops here, so the disks are consistent with the memory saved below.
  FCVM_TRY_CTX(vm.backend->pause(), "pause the guest");
  undo.add("resume the guest", [&vm] { (void)vm.backend->resume(); });
  std::vector<std::string> disk_paths;
  auto root = rec.dir + "/" + traits->root_disk_file;
  FCVM_TRY_CTX(clone_file_data(root, files.disk, false, 0600), "copy the root disk");
  disk_paths.push_back(files.disk);
  if (vm.options.image.source != storage::ImageSource::kRegistry) {
    FCVM_TRY_CTX(clone_file_data(vm.options.image.archive_path, files.image, false, 0600),
                 "copy the image archive");
    disk_paths.push_back(files.image);
  }
  if (traits->snapshot.copies_kernel) {
    // The VMM (QEMU) loads the kernel into guest memory again when it restores: it must be this
    // one.
    FCVM_TRY_CTX(clone_file_data(s.kernel, files.kernel, false, 0600), "copy the kernel");
    FCVM_TRY_CTX(clone_file_data(ctx.paths.initrd(), files.initrd, false, 0600), "copy the initrd");
  }
  FCVM_TRY_CTX(vm.backend->snapshot_create(files.memory, files.state, disk_paths),
               fmt::format("snapshot {}", vm.backend->name()));
  // Immutable from here on: clones read these files for as long as they exist.
  for (const auto& f : {files.state, files.disk, files.kernel, files.initrd, files.image}) {
    if (path_exists(f)) ::chmod(f.c_str(), 0400);
  }
  ::chmod(files.memory.c_str(), traits->snapshot.memory_writable ? 0600 : 0400);
  s.size_bytes = space_used(s.dir);
  FCVM_TRY(snaps.complete(s.id, s.size_bytes));
  ::chmod(s.dir.c_str(), 0500);
  undo.commit();
  s.status = state::SnapshotStatus::kComplete;
  s.creator = {};
  if (resume_after) FCVM_TRY_CTX(vm.backend->resume(), "resume the guest");
  return s;
}

Result<> reconcile_snapshots(state::VmStore& store) {
  state::SnapshotStore snaps(store.db());
  auto all = snaps.list_all();
  if (!all) return tl::unexpected<Error>(all.error());
  for (const auto& s : *all) {
    if (s.status == state::SnapshotStatus::kComplete || s.creator.alive()) continue;
    FCVM_LOG(kInfo, "reconcile", "snapshot {}: its writer is gone; removing the partial files",
             s.name);
    FCVM_TRY(remove_snapshot_dir(s.dir));
    FCVM_TRY(snaps.remove(s.id));
  }
  return {};
}

Result<std::vector<state::SnapshotRecord>> list_snapshots(state::VmStore& store) {
  FCVM_TRY(reconcile_snapshots(store));
  auto all = state::SnapshotStore(store.db()).list_all();
  if (!all) return tl::unexpected<Error>(all.error());
  std::vector<state::SnapshotRecord> out;
  for (auto& s : *all) {
    if (s.status == state::SnapshotStatus::kComplete) out.push_back(std::move(s));
  }
  return out;
}

Result<state::SnapshotRecord> find_snapshot(state::VmStore& store, const std::string& ref) {
  FCVM_TRY(reconcile_snapshots(store));
  return state::SnapshotStore(store.db()).find(ref);
}

Result<> remove_snapshot(state::VmStore& store, const state::SnapshotRecord& snap, bool force) {
  state::SnapshotStore snaps(store.db());
  auto clones = snaps.clones_of(snap.id);
  if (!clones) return tl::unexpected<Error>(clones.error());
  if (!clones->empty()) {
    std::vector<std::string> names;
    for (const auto& [id, name] : *clones) names.push_back(name);
    if (!force) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("snapshot {} is in use by {} VM(s) restored from it ({}): remove "
                              "them first, or use snapshot rm -f to stop and remove them",
                              snap.name, names.size(), join(names, ", ")));
    }
    for (const auto& [id, name] : *clones) {
      auto rec = store.get(id);
      if (!rec) return tl::unexpected<Error>(rec.error());
      if (!*rec) continue;
      FCVM_TRY_CTX(remove_vm(store, **rec, true), fmt::format("remove clone {}", name));
    }
  }
  FCVM_TRY(remove_snapshot_dir(snap.dir));
  return snaps.remove(snap.id);
}

Result<RunOptions> clone_run_options(const state::SnapshotRecord& snap, const CloneOptions& c) {
  auto base = options_from_json(snap.options_json);
  if (!base) return tl::unexpected<Error>(base.error().wrap("snapshot " + snap.name));
  RunOptions o = *base;
  o.name = c.name;
  for (const auto& [k, v] : c.labels) o.labels[k] = v;
  o.ports = c.ports;
  if (c.network) o.network = *c.network;
  o.wait_ready = c.wait_ready;
  o.keep_on_failure = c.keep_on_failure;
  o.timings_file = c.timings_file;
  o.ttl_s = c.ttl_s;  // the clone's own, never the source's
  FCVM_TRY_ASSIGN(o.vmm, parse_vmm_choice(snap.backend, "snapshot " + snap.name + "'s backend"));
  o.save_snapshot.clear();  // the source's request, not the clone's
  o.snapshot_then_stop = false;
  // The snapshot's own copy of the archive is the disk the guest has (and may read again).
  if (o.image.source != storage::ImageSource::kRegistry) {
    auto ref = storage::parse_image_ref(fmt::format(
        "{}:{}", storage::ImageRef::source_name(o.image.source), snapshot_files(snap).image));
    if (!ref) return tl::unexpected<Error>(ref.error().wrap("snapshot " + snap.name));
    o.image = *ref;
  }
  return o;
}

Result<state::VmRecord> create_clone(Context& ctx, state::VmStore& store,
                                     const state::SnapshotRecord& snap, const RunOptions& options,
                                     bool auto_remove) {
  // One transaction would be tidier, but the order is safe: the row names the snapshot before
  // anything uses it, and `snapshot rm` refuses while such a row exists.
  auto rec = create_vm(ctx, store, options, auto_remove, snap.id);
  if (!rec) return tl::unexpected<Error>(rec.error());
  if (rec->image != snap.image) {
    rec->image = snap.image;  // what the user ran, not the snapshot's copy of its archive
    if (auto r = store.update(*rec); !r) {
      (void)remove_vm(store, *rec, true);
      return tl::unexpected<Error>(r.error());
    }
  }
  // The snapshot may have been removed between the lookup and the insert.
  auto still = state::SnapshotStore(store.db()).get(snap.id);
  if (!still || !*still) {
    (void)remove_vm(store, *rec, true);
    return fail(ErrorCode::kNotFound, fmt::format("snapshot {} was removed", snap.name));
  }
  return rec;
}

}  // namespace fcvm::vm
