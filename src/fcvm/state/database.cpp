#include "fcvm/state/database.hpp"

#include <fmt/format.h>
#include <sqlite3.h>

#include <chrono>
#include <thread>
#include <utility>

namespace fcvm::state {

Result<Database> Database::open(const std::string& path) {
  Database db;
  int rc =
      sqlite3_open_v2(path.c_str(), &db.m_db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    return fail(ErrorCode::kSystem,
                fmt::format("open state database {}: {}", path,
                            db.m_db ? sqlite3_errmsg(db.m_db) : "out of memory"));
  }
  // Many fcvm processes share the file: wait for locks instead of failing at once.
  sqlite3_busy_timeout(db.m_db, 10000);
  // Switching a new database to WAL takes an exclusive lock, and SQLite answers SQLITE_BUSY at
  // once (without the busy handler) when another connection opens the file at that moment, e.g.
  // two commands on a fresh data directory: retry for as long as the busy timeout.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    int wal = sqlite3_exec(db.m_db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
    if (wal == SQLITE_OK) break;
    if ((wal != SQLITE_BUSY && wal != SQLITE_LOCKED) ||
        std::chrono::steady_clock::now() > deadline) {
      return tl::unexpected<Error>(db.error(fmt::format("open state database {}: WAL", path)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FCVM_TRY(db.exec("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"));
  return db;
}

Database::~Database() {
  if (m_db) sqlite3_close_v2(m_db);
}
Database::Database(Database&& other) noexcept : m_db(std::exchange(other.m_db, nullptr)) {}
Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    if (m_db) sqlite3_close_v2(m_db);
    m_db = std::exchange(other.m_db, nullptr);
  }
  return *this;
}

int64_t Database::changes() const { return sqlite3_changes64(m_db); }

Error Database::error(std::string_view context) const {
  return Error(ErrorCode::kSystem, fmt::format("{}: {}", context, sqlite3_errmsg(m_db)));
}

Result<> Database::exec(const std::string& sql) {
  char* msg = nullptr;
  if (sqlite3_exec(m_db, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
    std::string text = msg ? msg : "unknown error";
    sqlite3_free(msg);
    return fail(ErrorCode::kSystem, fmt::format("sql: {}", text));
  }
  return {};
}

Result<Statement> Database::prepare(const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(m_db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    return tl::unexpected<Error>(error("prepare"));
  }
  return Statement(*this, stmt);
}

Statement::~Statement() {
  if (m_stmt) sqlite3_finalize(m_stmt);
}
Statement::Statement(Statement&& other) noexcept
    : m_db(other.m_db),
      m_stmt(std::exchange(other.m_stmt, nullptr)),
      m_bind_error(other.m_bind_error) {}
Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    if (m_stmt) sqlite3_finalize(m_stmt);
    m_db = other.m_db;
    m_stmt = std::exchange(other.m_stmt, nullptr);
    m_bind_error = other.m_bind_error;
  }
  return *this;
}

Statement& Statement::bind(int index, std::string_view value) {
  int rc = sqlite3_bind_text(m_stmt, index, value.data(), static_cast<int>(value.size()),
                             SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) m_bind_error = rc;
  return *this;
}
Statement& Statement::bind(int index, int64_t value) {
  int rc = sqlite3_bind_int64(m_stmt, index, value);
  if (rc != SQLITE_OK) m_bind_error = rc;
  return *this;
}
Statement& Statement::bind_null(int index) {
  int rc = sqlite3_bind_null(m_stmt, index);
  if (rc != SQLITE_OK) m_bind_error = rc;
  return *this;
}
Statement& Statement::bind(int index, const std::optional<int64_t>& value) {
  return value ? bind(index, *value) : bind_null(index);
}

Result<bool> Statement::step() {
  if (m_bind_error)
    return fail(ErrorCode::kInternal, fmt::format("sql bind: {}", sqlite3_errstr(m_bind_error)));
  int rc = sqlite3_step(m_stmt);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  auto err = m_db->error("sql step");
  if (sqlite3_extended_errcode(m_db->handle()) == SQLITE_CONSTRAINT_FOREIGNKEY) {
    return fail(ErrorCode::kConflict, err.message());
  }
  if (rc == SQLITE_CONSTRAINT) return fail(ErrorCode::kAlreadyExists, err.message());
  return tl::unexpected<Error>(err);
}

Result<> Statement::run() {
  for (;;) {
    auto r = step();
    if (!r) return tl::unexpected<Error>(r.error());
    if (!*r) return {};
  }
}

int64_t Statement::column_int(int col) const { return sqlite3_column_int64(m_stmt, col); }
std::optional<int64_t> Statement::column_opt_int(int col) const {
  if (sqlite3_column_type(m_stmt, col) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_int64(m_stmt, col);
}
std::string Statement::column_text(int col) const {
  const unsigned char* t = sqlite3_column_text(m_stmt, col);
  // SQLite returns UTF-8 text as unsigned char; the bytes are the same.
  return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
}

Result<Transaction> Transaction::begin(Database& db) {
  FCVM_TRY(db.exec("BEGIN IMMEDIATE"));
  return Transaction(db);
}
Transaction::~Transaction() {
  if (m_db && !m_done) (void)m_db->exec("ROLLBACK");
}
Transaction::Transaction(Transaction&& other) noexcept
    : m_db(std::exchange(other.m_db, nullptr)), m_done(other.m_done) {}
Result<> Transaction::commit() {
  FCVM_TRY(m_db->exec("COMMIT"));
  m_done = true;
  return {};
}

}  // namespace fcvm::state
