#pragma once
// RAII over SQLite: Database (one connection; WAL, busy timeout, foreign keys), Statement
// (prepared, finalized on destruction), Transaction (BEGIN IMMEDIATE; rolls back unless
// committed). Every call returns Result; SQLite's message is carried verbatim.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fcvm/util/result.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace fcvm::state {

class Statement;

class Database {
 public:
  static Result<Database> open(const std::string& path);
  Database() = default;
  ~Database();
  Database(Database&& other) noexcept;
  Database& operator=(Database&& other) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  Result<> exec(const std::string& sql);
  Result<Statement> prepare(const std::string& sql);
  sqlite3* handle() const { return m_db; }
  // Rows changed by the last INSERT/UPDATE/DELETE on this connection.
  int64_t changes() const;
  Error error(std::string_view context) const;

 private:
  sqlite3* m_db = nullptr;
};

class Statement {
 public:
  Statement() = default;
  Statement(Database& db, sqlite3_stmt* stmt) : m_db(&db), m_stmt(stmt) {}
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // 1-based parameters, like SQLite.
  Statement& bind(int index, std::string_view value);
  Statement& bind(int index, int64_t value);
  Statement& bind_null(int index);
  Statement& bind(int index, const std::optional<int64_t>& value);
  // true: a row is ready; false: done.
  Result<bool> step();
  Result<> run();  // steps to completion
  int64_t column_int(int col) const;
  std::optional<int64_t> column_opt_int(int col) const;
  std::string column_text(int col) const;

 private:
  Database* m_db = nullptr;
  sqlite3_stmt* m_stmt = nullptr;
  int m_bind_error = 0;
};

class Transaction {
 public:
  static Result<Transaction> begin(Database& db);  // BEGIN IMMEDIATE: takes the write lock now
  ~Transaction();
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Result<> commit();

 private:
  explicit Transaction(Database& db) : m_db(&db) {}
  Database* m_db = nullptr;
  bool m_done = false;
};

}  // namespace fcvm::state
