#include "fcvm/state/vm_store.hpp"

#include <fmt/format.h>

#include <chrono>

namespace fcvm::state {
namespace {

// Numbered migrations: entry i brings the schema from version i to i+1 (PRAGMA user_version).
// Never edit a released entry; append a new one.
const char* const k_migrations[] = {
    R"sql(
CREATE TABLE vms (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  image TEXT NOT NULL,
  backend TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL,
  vcpus INTEGER NOT NULL,
  mem_mib INTEGER NOT NULL,
  ports TEXT NOT NULL DEFAULT '',
  options_json TEXT NOT NULL,
  dir TEXT NOT NULL,
  auto_remove INTEGER NOT NULL DEFAULT 0,
  monitor_pid INTEGER NOT NULL DEFAULT 0, monitor_start INTEGER NOT NULL DEFAULT 0,
  monitor_boot TEXT NOT NULL DEFAULT '',
  vmm_pid INTEGER NOT NULL DEFAULT 0, vmm_start INTEGER NOT NULL DEFAULT 0,
  vmm_boot TEXT NOT NULL DEFAULT '',
  helper_pid INTEGER NOT NULL DEFAULT 0, helper_start INTEGER NOT NULL DEFAULT 0,
  helper_boot TEXT NOT NULL DEFAULT '',
  network_json TEXT NOT NULL DEFAULT '',
  created_ms INTEGER NOT NULL,
  started_ms INTEGER,
  finished_ms INTEGER,
  exit_code INTEGER,
  error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX vms_created ON vms(created_ms);
)sql",
    // 2: snapshots, and the snapshot a clone was restored from.
    R"sql(
ALTER TABLE vms ADD COLUMN snapshot TEXT NOT NULL DEFAULT '';
CREATE TABLE snapshots (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  status TEXT NOT NULL,
  source_id TEXT NOT NULL,
  source_name TEXT NOT NULL,
  image TEXT NOT NULL,
  backend TEXT NOT NULL,
  vcpus INTEGER NOT NULL,
  mem_mib INTEGER NOT NULL,
  kernel TEXT NOT NULL,
  base_disk TEXT NOT NULL,
  options_json TEXT NOT NULL,
  plan_json TEXT NOT NULL,
  dir TEXT NOT NULL,
  size_bytes INTEGER NOT NULL DEFAULT 0,
  creator_pid INTEGER NOT NULL DEFAULT 0, creator_start INTEGER NOT NULL DEFAULT 0,
  creator_boot TEXT NOT NULL DEFAULT '',
  created_ms INTEGER NOT NULL,
  completed_ms INTEGER
);
CREATE INDEX vms_snapshot ON vms(snapshot);
)sql",
    // 3: the host image store. A VM or snapshot that runs from a stored image references it, so
    // that the image cannot be removed under it (the foreign key refuses the DELETE).
    R"sql(
CREATE TABLE images (
  id TEXT PRIMARY KEY,
  disk TEXT NOT NULL,
  format TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  content_bytes INTEGER NOT NULL,
  layers INTEGER NOT NULL,
  manifest_digest TEXT NOT NULL,
  config_json TEXT NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE TABLE image_names (
  name TEXT PRIMARY KEY,
  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  source_stamp TEXT NOT NULL DEFAULT '',
  tagged_ms INTEGER NOT NULL
);
CREATE INDEX image_names_image ON image_names(image_id);
ALTER TABLE vms ADD COLUMN image_id TEXT REFERENCES images(id);
ALTER TABLE snapshots ADD COLUMN image_id TEXT REFERENCES images(id);
CREATE INDEX vms_image ON vms(image_id);
CREATE INDEX snapshots_image ON snapshots(image_id);
)sql",
    // 4: the version of the VMM that runs the VM (inspect).
    R"sql(
ALTER TABLE vms ADD COLUMN vmm_version TEXT NOT NULL DEFAULT '';
)sql",
    // 5: restarts by the VM's restart policy since it was last started by hand.
    R"sql(
ALTER TABLE vms ADD COLUMN restart_count INTEGER NOT NULL DEFAULT 0;
)sql",
    // 6: when the VM's time-to-live ends (unix ms; NULL: none).
    R"sql(
ALTER TABLE vms ADD COLUMN expires_ms INTEGER;
)sql",
};

constexpr const char* k_columns =
    "id, name, image, backend, status, vcpus, mem_mib, ports, options_json, dir, auto_remove, "
    "monitor_pid, monitor_start, monitor_boot, vmm_pid, vmm_start, vmm_boot, helper_pid, "
    "helper_start, helper_boot, network_json, created_ms, started_ms, finished_ms, exit_code, "
    "error, snapshot, image_id, vmm_version, restart_count, expires_ms";

VmRecord read_row(const Statement& s) {
  VmRecord r;
  r.id = s.column_text(0);
  r.name = s.column_text(1);
  r.image = s.column_text(2);
  r.backend = s.column_text(3);
  r.status = parse_status(s.column_text(4)).value_or(VmStatus::kExited);
  r.vcpus = static_cast<int>(s.column_int(5));
  r.mem_mib = static_cast<int>(s.column_int(6));
  r.ports = s.column_text(7);
  r.options_json = s.column_text(8);
  r.dir = s.column_text(9);
  r.auto_remove = s.column_int(10) != 0;
  auto ident = [&](int col) {
    return sys::ProcessIdentity{static_cast<pid_t>(s.column_int(col)),
                                static_cast<unsigned long long>(s.column_int(col + 1)),
                                s.column_text(col + 2)};
  };
  r.monitor = ident(11);
  r.vmm = ident(14);
  r.helper = ident(17);
  r.network_json = s.column_text(20);
  r.created_ms = s.column_int(21);
  r.started_ms = s.column_opt_int(22);
  r.finished_ms = s.column_opt_int(23);
  r.exit_code = s.column_opt_int(24);
  r.error = s.column_text(25);
  r.snapshot = s.column_text(26);
  r.image_id = s.column_text(27);
  r.vmm_version = s.column_text(28);
  r.restart_count = static_cast<int>(s.column_int(29));
  r.expires_ms = s.column_opt_int(30);
  return r;
}

void bind_row(Statement& s, const VmRecord& r) {
  s.bind(1, r.id)
      .bind(2, r.name)
      .bind(3, r.image)
      .bind(4, r.backend)
      .bind(5, status_name(r.status));
  s.bind(6, int64_t{r.vcpus}).bind(7, int64_t{r.mem_mib}).bind(8, r.ports).bind(9, r.options_json);
  s.bind(10, r.dir).bind(11, int64_t{r.auto_remove ? 1 : 0});
  auto ident = [&](int col, const sys::ProcessIdentity& p) {
    s.bind(col, int64_t{p.pid})
        .bind(col + 1, static_cast<int64_t>(p.start_time))
        .bind(col + 2, p.boot_id);
  };
  ident(12, r.monitor);
  ident(15, r.vmm);
  ident(18, r.helper);
  s.bind(21, r.network_json).bind(22, r.created_ms).bind(23, r.started_ms).bind(24, r.finished_ms);
  s.bind(25, r.exit_code).bind(26, r.error).bind(27, r.snapshot);
  if (r.image_id.empty()) {
    s.bind_null(28);
  } else {
    s.bind(28, r.image_id);
  }
  s.bind(29, r.vmm_version);
  s.bind(30, int64_t{r.restart_count});
  s.bind(31, r.expires_ms);
}

}  // namespace

std::string_view status_name(VmStatus s) {
  switch (s) {
    case VmStatus::kCreated:
      return "created";
    case VmStatus::kStarting:
      return "starting";
    case VmStatus::kRunning:
      return "running";
    case VmStatus::kPaused:
      return "paused";
    case VmStatus::kStopping:
      return "stopping";
    case VmStatus::kRestarting:
      return "restarting";
    case VmStatus::kExited:
      return "exited";
  }
  return "unknown";
}

std::optional<VmStatus> parse_status(std::string_view s) {
  for (auto v : {VmStatus::kCreated, VmStatus::kStarting, VmStatus::kRunning, VmStatus::kPaused,
                 VmStatus::kStopping, VmStatus::kRestarting, VmStatus::kExited}) {
    if (status_name(v) == s) return v;
  }
  return std::nullopt;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<VmStore> VmStore::open(const std::string& path) {
  auto db = Database::open(path);
  if (!db) return tl::unexpected<Error>(db.error());
  VmStore store(std::move(*db), path);
  FCVM_TRY(store.migrate());
  return store;
}

Result<> VmStore::migrate() {
  auto tx = Transaction::begin(m_db);
  if (!tx) return tl::unexpected<Error>(tx.error());
  auto version_stmt = m_db.prepare("PRAGMA user_version");
  if (!version_stmt) return tl::unexpected<Error>(version_stmt.error());
  FCVM_TRY(version_stmt->step());
  auto version = static_cast<size_t>(version_stmt->column_int(0));
  constexpr size_t k_latest = sizeof k_migrations / sizeof k_migrations[0];
  if (version > k_latest) {
    return fail(ErrorCode::kUnavailable,
                fmt::format("the state database has schema version {}, newer than this fcvm knows "
                            "({}): upgrade fcvm",
                            version, k_latest));
  }
  for (size_t v = version; v < k_latest; ++v) {
    FCVM_TRY_CTX(m_db.exec(k_migrations[v]), fmt::format("migrate state to version {}", v + 1));
  }
  if (version != k_latest) FCVM_TRY(m_db.exec(fmt::format("PRAGMA user_version = {}", k_latest)));
  return tx->commit();
}

Result<> VmStore::insert(const VmRecord& record) {
  auto s = m_db.prepare(fmt::format(
      "INSERT INTO vms ({}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,"
      "?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29,?30,?31)",
      k_columns));
  if (!s) return tl::unexpected<Error>(s.error());
  bind_row(*s, record);
  auto r = s->run();
  if (!r && r.error().code() == ErrorCode::kAlreadyExists) {
    return fail(ErrorCode::kAlreadyExists,
                fmt::format("the name \"{}\" is already in use by another VM", record.name));
  }
  if (!r && r.error().code() == ErrorCode::kConflict) {
    return fail(ErrorCode::kConflict,
                fmt::format("image {} was removed from the image store", record.image_id));
  }
  return r;
}

Result<> VmStore::update(const VmRecord& record) {
  auto s = m_db.prepare(
      "UPDATE vms SET name=?2, image=?3, backend=?4, status=?5, vcpus=?6, mem_mib=?7, ports=?8, "
      "options_json=?9, dir=?10, auto_remove=?11, monitor_pid=?12, monitor_start=?13, "
      "monitor_boot=?14, vmm_pid=?15, vmm_start=?16, vmm_boot=?17, helper_pid=?18, "
      "helper_start=?19, helper_boot=?20, network_json=?21, created_ms=?22, started_ms=?23, "
      "finished_ms=?24, exit_code=?25, error=?26, snapshot=?27, image_id=?28, "
      "vmm_version=?29, restart_count=?30, expires_ms=?31 WHERE id=?1");
  if (!s) return tl::unexpected<Error>(s.error());
  bind_row(*s, record);
  return s->run();
}

Result<> VmStore::remove(const std::string& id) {
  auto s = m_db.prepare("DELETE FROM vms WHERE id=?1");
  if (!s) return tl::unexpected<Error>(s.error());
  s->bind(1, id);
  return s->run();
}

Result<std::optional<VmRecord>> VmStore::get(const std::string& id) {
  auto s = m_db.prepare(fmt::format("SELECT {} FROM vms WHERE id=?1", k_columns));
  if (!s) return tl::unexpected<Error>(s.error());
  s->bind(1, id);
  auto row = s->step();
  if (!row) return tl::unexpected<Error>(row.error());
  if (!*row) return std::optional<VmRecord>{};
  return std::optional<VmRecord>(read_row(*s));
}

Result<VmRecord> VmStore::find(const std::string& ref) {
  auto s = m_db.prepare(
      fmt::format("SELECT {} FROM vms WHERE name=?1 OR id=?1 OR (length(?1) >= 3 AND substr(id, 1, "
                  "length(?1))=?1) ORDER BY (name=?1) DESC, (id=?1) DESC LIMIT 3",
                  k_columns));
  if (!s) return tl::unexpected<Error>(s.error());
  s->bind(1, ref);
  std::vector<VmRecord> found;
  for (;;) {
    auto row = s->step();
    if (!row) return tl::unexpected<Error>(row.error());
    if (!*row) break;
    found.push_back(read_row(*s));
  }
  if (found.empty()) return fail(ErrorCode::kNotFound, fmt::format("no VM named \"{}\"", ref));
  if (found.size() > 1 && found[0].name != ref && found[0].id != ref) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("\"{}\" matches several VM ids: use more characters", ref));
  }
  return found[0];
}

Result<std::vector<VmRecord>> VmStore::list() {
  auto s = m_db.prepare(fmt::format("SELECT {} FROM vms ORDER BY created_ms", k_columns));
  if (!s) return tl::unexpected<Error>(s.error());
  std::vector<VmRecord> out;
  for (;;) {
    auto row = s->step();
    if (!row) return tl::unexpected<Error>(row.error());
    if (!*row) break;
    out.push_back(read_row(*s));
  }
  return out;
}

}  // namespace fcvm::state
