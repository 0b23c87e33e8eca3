#include "fcvm/state/image_store.hpp"

#include <fmt/format.h>

#include "fcvm/state/vm_store.hpp"

namespace fcvm::state {
namespace {

constexpr const char* k_columns =
    "id, disk, format, size_bytes, content_bytes, layers, manifest_digest, config_json, "
    "created_ms";

ImageRecord read_row(const Statement& s) {
  ImageRecord r;
  r.id = s.column_text(0);
  r.disk = s.column_text(1);
  r.format = s.column_text(2);
  r.size_bytes = s.column_int(3);
  r.content_bytes = s.column_int(4);
  r.layers = s.column_int(5);
  r.manifest_digest = s.column_text(6);
  r.config_json = s.column_text(7);
  r.created_ms = s.column_int(8);
  return r;
}

// The first column of every row `sql` (one text parameter) selects.
Result<std::vector<std::string>> texts(Database& db, const std::string& sql,
                                       const std::string& arg) {
  auto s = db.prepare(sql);
  if (!s) return tl::unexpected<Error>(s.error());
  s->bind(1, arg);
  std::vector<std::string> out;
  for (;;) {
    auto row = s->step();
    if (!row) return tl::unexpected<Error>(row.error());
    if (!*row) break;
    out.push_back(s->column_text(0));
  }
  return out;
}

Result<std::vector<std::string>> names_of(Database& db, const std::string& id) {
  return texts(db, "SELECT name FROM image_names WHERE image_id=?1 ORDER BY tagged_ms DESC", id);
}

Result<std::vector<ImageRecord>> select(Database& db, const std::string& where,
                                        const std::string& arg) {
  auto s = db.prepare(
      fmt::format("SELECT {} FROM images {} ORDER BY created_ms DESC", k_columns, where));
  if (!s) return tl::unexpected<Error>(s.error());
  if (!arg.empty()) s->bind(1, arg);
  std::vector<ImageRecord> out;
  for (;;) {
    auto row = s->step();
    if (!row) return tl::unexpected<Error>(row.error());
    if (!*row) break;
    out.push_back(read_row(*s));
  }
  for (auto& r : out) {
    auto names = names_of(db, r.id);
    if (!names) return tl::unexpected<Error>(names.error());
    r.names = std::move(*names);
  }
  return out;
}

}  // namespace

Result<> ImageStore::add(const ImageRecord& image, const std::string& name,
                         const std::string& source_stamp) {
  auto tx = Transaction::begin(*m_db);
  if (!tx) return tl::unexpected<Error>(tx.error());
  auto ins = m_db->prepare(fmt::format(
      "INSERT OR IGNORE INTO images ({}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)", k_columns));
  if (!ins) return tl::unexpected<Error>(ins.error());
  ins->bind(1, image.id).bind(2, image.disk).bind(3, image.format).bind(4, image.size_bytes);
  ins->bind(5, image.content_bytes).bind(6, image.layers).bind(7, image.manifest_digest);
  ins->bind(8, image.config_json).bind(9, image.created_ms);
  FCVM_TRY(ins->run());
  if (!name.empty()) {
    auto tag = m_db->prepare(
        "INSERT INTO image_names (name, image_id, source_stamp, tagged_ms) VALUES (?1,?2,?3,?4) "
        "ON CONFLICT(name) DO UPDATE SET image_id=excluded.image_id, "
        "source_stamp=excluded.source_stamp, tagged_ms=excluded.tagged_ms");
    if (!tag) return tl::unexpected<Error>(tag.error());
    tag->bind(1, name).bind(2, image.id).bind(3, source_stamp).bind(4, now_ms());
    FCVM_TRY(tag->run());
  }
  return tx->commit();
}

Result<std::optional<ImageRecord>> ImageStore::get(const std::string& id) {
  auto rows = select(*m_db, "WHERE id=?1", id);
  if (!rows) return tl::unexpected<Error>(rows.error());
  if (rows->empty()) return std::optional<ImageRecord>();
  return std::optional<ImageRecord>(std::move(rows->front()));
}

Result<std::optional<std::pair<ImageRecord, std::string>>> ImageStore::by_name(
    const std::string& name) {
  using Found = std::optional<std::pair<ImageRecord, std::string>>;
  auto s = m_db->prepare("SELECT image_id, source_stamp FROM image_names WHERE name=?1");
  if (!s) return tl::unexpected<Error>(s.error());
  s->bind(1, name);
  auto row = s->step();
  if (!row) return tl::unexpected<Error>(row.error());
  if (!*row) return Found();
  auto id = s->column_text(0);
  auto stamp = s->column_text(1);
  auto image = get(id);
  if (!image) return tl::unexpected<Error>(image.error());
  if (!*image) return Found();
  return Found(std::make_pair(std::move(**image), std::move(stamp)));
}

Result<ImageRecord> ImageStore::find(const std::string& ref) {
  auto named = by_name(ref);
  if (!named) return tl::unexpected<Error>(named.error());
  if (*named) return std::move((*named)->first);
  std::string hex = ref.rfind("sha256:", 0) == 0 ? ref.substr(7) : ref;
  bool is_hex = hex.size() >= 3 && hex.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (is_hex) {
    auto found = texts(
        *m_db, fmt::format("SELECT id FROM images WHERE substr(id, 8, {}) = ?1", hex.size()), hex);
    if (!found) return tl::unexpected<Error>(found.error());
    const auto& ids = *found;
    if (ids.size() > 1) {
      return fail(ErrorCode::kInvalidInput,
                  fmt::format("image id prefix \"{}\" is ambiguous ({} images)", ref, ids.size()));
    }
    if (ids.size() == 1) {
      auto image = get(ids.front());
      if (!image) return tl::unexpected<Error>(image.error());
      if (*image) return std::move(**image);
    }
  }
  return fail(ErrorCode::kNotFound, fmt::format("no image \"{}\" in the image store", ref));
}

Result<std::vector<ImageRecord>> ImageStore::list() { return select(*m_db, "", ""); }

Result<ImageUsers> ImageStore::users(const std::string& id) {
  ImageUsers users;
  for (auto [table, out] :
       {std::make_pair("vms", &users.vms), std::make_pair("snapshots", &users.snapshots)}) {
    auto s = m_db->prepare(
        fmt::format("SELECT id, name FROM {} WHERE image_id=?1 ORDER BY created_ms", table));
    if (!s) return tl::unexpected<Error>(s.error());
    s->bind(1, id);
    for (;;) {
      auto row = s->step();
      if (!row) return tl::unexpected<Error>(row.error());
      if (!*row) break;
      out->emplace_back(s->column_text(0), s->column_text(1));
    }
  }
  return users;
}

Result<bool> ImageStore::remove_name(const std::string& name) {
  auto tx = Transaction::begin(*m_db);
  if (!tx) return tl::unexpected<Error>(tx.error());
  auto named = by_name(name);
  if (!named) return tl::unexpected<Error>(named.error());
  if (!*named) return fail(ErrorCode::kNotFound, fmt::format("no image named \"{}\"", name));
  auto s = m_db->prepare("DELETE FROM image_names WHERE name=?1");
  if (!s) return tl::unexpected<Error>(s.error());
  s->bind(1, name);
  FCVM_TRY(s->run());
  auto rest = names_of(*m_db, (*named)->first.id);
  if (!rest) return tl::unexpected<Error>(rest.error());
  FCVM_TRY(tx->commit());
  return rest->empty();
}

Result<> ImageStore::remove(const std::string& id) {
  auto s = m_db->prepare("DELETE FROM images WHERE id=?1");
  if (!s) return tl::unexpected<Error>(s.error());
  s->bind(1, id);
  auto r = s->run();
  if (!r && r.error().code() == ErrorCode::kConflict) {
    return fail(ErrorCode::kConflict, fmt::format("image {} is in use", id));
  }
  return r;
}

}  // namespace fcvm::state
