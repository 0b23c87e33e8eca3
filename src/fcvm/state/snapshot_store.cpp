#include "fcvm/state/snapshot_store.hpp"

#include <fmt/format.h>

#include "fcvm/state/vm_store.hpp"

namespace fcvm::state {
namespace {

constexpr const char* k_columns =
    "id, name, status, source_id, source_name, image, backend, vcpus, mem_mib, kernel, base_disk, "
    "options_json, plan_json, dir, size_bytes, creator_pid, creator_start, creator_boot, "
    "created_ms, completed_ms, image_id";

SnapshotRecord read_row(const Statement& s) {
  SnapshotRecord r;
  r.id = s.column_text(0);
  r.name = s.column_text(1);
  r.status = s.column_text(2) == "complete" ? SnapshotStatus::kComplete : SnapshotStatus::kCreating;
  r.source_id = s.column_text(3);
  r.source_name = s.column_text(4);
  r.image = s.column_text(5);
  r.backend = s.column_text(6);
  r.vcpus = static_cast<int>(s.column_int(7));
  r.mem_mib = static_cast<int>(s.column_int(8));
  r.kernel = s.column_text(9);
  r.base_disk = s.column_text(10);
  r.options_json = s.column_text(11);
  r.plan_json = s.column_text(12);
  r.dir = s.column_text(13);
  r.size_bytes = s.column_int(14);
  r.creator = {static_cast<pid_t>(s.column_int(15)),
               static_cast<unsigned long long>(s.column_int(16)), s.column_text(17)};
  r.created_ms = s.column_int(18);
  r.completed_ms = s.column_opt_int(19);
  r.image_id = s.column_text(20);
  return r;
}

Result<std::vector<SnapshotRecord>> collect(Statement& s) {
  std::vector<SnapshotRecord> out;
  for (;;) {
    auto row = s.step();
    if (!row) return tl::unexpected<Error>(row.error());
    if (!*row) break;
    out.push_back(read_row(s));
  }
  return out;
}

}  // namespace

std::string_view snapshot_status_name(SnapshotStatus s) {
  return s == SnapshotStatus::kComplete ? "complete" : "creating";
}

Result<> SnapshotStore::insert(const SnapshotRecord& r) {
  auto s = m_db->prepare(
      fmt::format("INSERT INTO snapshots ({}) VALUES "
                  "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21)",
                  k_columns));
  if (!s) return tl::unexpected<Error>(s.error());
  s->bind(1, r.id).bind(2, r.name).bind(3, snapshot_status_name(r.status)).bind(4, r.source_id);
  s->bind(5, r.source_name).bind(6, r.image).bind(7, r.backend).bind(8, int64_t{r.vcpus});
  s->bind(9, int64_t{r.mem_mib}).bind(10, r.kernel).bind(11, r.base_disk).bind(12, r.options_json);
  s->bind(13, r.plan_json).bind(14, r.dir).bind(15, r.size_bytes);
  s->bind(16, int64_t{r.creator.pid})
      .bind(17, static_cast<int64_t>(r.creator.start_time))
      .bind(18, r.creator.boot_id);
  s->bind(19, r.created_ms).bind(20, r.completed_ms);
  if (r.image_id.empty()) {
    s->bind_null(21);
  } else {
    s->bind(21, r.image_id);
  }
  auto done = s->run();
  if (!done && done.error().code() == ErrorCode::kConflict) {
    return fail(ErrorCode::kConflict,
                fmt::format("image {} was removed from the image store", r.image_id));
  }
  if (!done && done.error().code() == ErrorCode::kAlreadyExists) {
    return fail(ErrorCode::kAlreadyExists,
                fmt::format("a snapshot named \"{}\" already exists", r.name));
  }
  return done;
}

Result<> SnapshotStore::complete(const std::string& id, int64_t size_bytes) {
  auto s = m_db->prepare(
      "UPDATE snapshots SET status='complete', size_bytes=?2, completed_ms=?3, creator_pid=0, "
      "creator_start=0, creator_boot='' WHERE id=?1 AND status='creating'");
  if (!s) return tl::unexpected<Error>(s.error());
  s->bind(1, id).bind(2, size_bytes).bind(3, now_ms());
  FCVM_TRY(s->run());
  if (m_db->changes() != 1) {
    return fail(ErrorCode::kNotFound, fmt::format("snapshot {} is gone or already complete", id));
  }
  return {};
}

Result<> SnapshotStore::remove(const std::string& id) {
  auto s = m_db->prepare("DELETE FROM snapshots WHERE id=?1");
  if (!s) return tl::unexpected<Error>(s.error());
  s->bind(1, id);
  return s->run();
}

Result<std::optional<SnapshotRecord>> SnapshotStore::get(const std::string& id) {
  auto s = m_db->prepare(fmt::format("SELECT {} FROM snapshots WHERE id=?1", k_columns));
  if (!s) return tl::unexpected<Error>(s.error());
  s->bind(1, id);
  auto row = s->step();
  if (!row) return tl::unexpected<Error>(row.error());
  if (!*row) return std::optional<SnapshotRecord>{};
  return std::optional<SnapshotRecord>(read_row(*s));
}

Result<SnapshotRecord> SnapshotStore::find(const std::string& ref) {
  auto s = m_db->prepare(fmt::format(
      "SELECT {} FROM snapshots WHERE status='complete' AND (name=?1 OR id=?1 OR (length(?1) >= 3 "
      "AND substr(id, 1, length(?1))=?1)) ORDER BY (name=?1) DESC, (id=?1) DESC LIMIT 3",
      k_columns));
  if (!s) return tl::unexpected<Error>(s.error());
  s->bind(1, ref);
  auto found = collect(*s);
  if (!found) return tl::unexpected<Error>(found.error());
  if (found->empty()) {
    return fail(ErrorCode::kNotFound, fmt::format("no snapshot named \"{}\"", ref));
  }
  const auto& first = found->front();
  if (found->size() > 1 && first.name != ref && first.id != ref) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("\"{}\" matches several snapshot ids: use more characters", ref));
  }
  return first;
}

Result<std::vector<SnapshotRecord>> SnapshotStore::list_all() {
  auto s = m_db->prepare(fmt::format("SELECT {} FROM snapshots ORDER BY created_ms", k_columns));
  if (!s) return tl::unexpected<Error>(s.error());
  return collect(*s);
}

Result<std::vector<std::pair<std::string, std::string>>> SnapshotStore::clones_of(
    const std::string& id) {
  auto s = m_db->prepare("SELECT id, name FROM vms WHERE snapshot=?1 ORDER BY created_ms");
  if (!s) return tl::unexpected<Error>(s.error());
  s->bind(1, id);
  std::vector<std::pair<std::string, std::string>> out;
  for (;;) {
    auto row = s->step();
    if (!row) return tl::unexpected<Error>(row.error());
    if (!*row) break;
    out.emplace_back(s->column_text(0), s->column_text(1));
  }
  return out;
}

}  // namespace fcvm::state
