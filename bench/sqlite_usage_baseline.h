// The SQLite baseline of the usage benchmarks (usage_log_bench.cpp,
// usage_http_bench.cpp): the same usage events, inserted into one table in
// WAL mode with synchronous=FULL, so that each benchmark prints its figures
// beside SQLite's in the same run.
//
// The table is the store's usage_events with the event id as its primary
// key:
//
//   | column     | type    | from the event                         |
//   |------------|---------|----------------------------------------|
//   | id         | TEXT    | the event's id (PRIMARY KEY)           |
//   | tenant_id  | TEXT    |                                        |
//   | product    | INTEGER | ledger::Product, as a number           |
//   | item       | TEXT    | the GPU type, for GPU time             |
//   | variant    | TEXT    | the tier, for GPU time                 |
//   | quantity   | INTEGER | GPU-ms, for GPU time                   |
//   | unit_nanos | INTEGER | the unit price in nano-dollars         |
//   | start_us   | INTEGER | Unix microseconds                      |
//   | end_us     | INTEGER | Unix microseconds                      |
//   | source_id  | TEXT    |                                        |
//
// A batch is one transaction: begin() (BEGIN IMMEDIATE), one insert() per
// event (INSERT ... ON CONFLICT (id) DO NOTHING), commit(). Every SQLite
// failure, and an id that is already there, ends the process with exit
// code 1 and a message on stderr: a benchmark that goes on after an error
// measures nothing. One connection; not thread-safe (the benchmarks share
// it under a mutex, as the store shares its own).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>

namespace headroom::bench {

// One event's columns; the views must live until insert() returns.
struct SqliteUsageRow {
  std::string_view id;
  std::string_view tenant_id;
  int product = 0;
  std::string_view item;
  std::string_view variant;
  std::int64_t quantity = 0;
  std::int64_t unit_nanos = 0;
  std::int64_t start_us = 0;
  std::int64_t end_us = 0;
  std::string_view source_id;
};

class SqliteUsageBaseline {
 public:
  // Creates the table in a new database at `path`. `message_prefix` starts
  // every error message ("usage_http_bench: ", or "").
  SqliteUsageBaseline(const std::string& path, std::string message_prefix)
      : message_prefix_(std::move(message_prefix)) {
    or_die(sqlite3_open(path.c_str(), &db_), "open");
    for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                            "CREATE TABLE usage_events (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, product INTEGER "
                            "NOT NULL, item TEXT NOT NULL, variant TEXT NOT NULL, quantity INTEGER NOT NULL, "
                            "unit_nanos INTEGER NOT NULL, start_us INTEGER NOT NULL, end_us INTEGER NOT NULL, "
                            "source_id TEXT NOT NULL)"}) {
      or_die(sqlite3_exec(db_, sql, nullptr, nullptr, nullptr), sql);
    }
    or_die(sqlite3_prepare_v2(db_,
                              "INSERT INTO usage_events (id, tenant_id, product, item, variant, quantity, "
                              "unit_nanos, start_us, end_us, source_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                              "ON CONFLICT (id) DO NOTHING",
                              -1, &insert_, nullptr),
           "prepare insert");
    or_die(sqlite3_prepare_v2(db_, "BEGIN IMMEDIATE", -1, &begin_, nullptr), "prepare begin");
    or_die(sqlite3_prepare_v2(db_, "COMMIT", -1, &commit_, nullptr), "prepare commit");
  }

  ~SqliteUsageBaseline() {
    sqlite3_finalize(insert_);
    sqlite3_finalize(begin_);
    sqlite3_finalize(commit_);
    sqlite3_close(db_);
  }

  SqliteUsageBaseline(const SqliteUsageBaseline&) = delete;
  SqliteUsageBaseline& operator=(const SqliteUsageBaseline&) = delete;

  void begin() { step_and_reset(begin_, "begin"); }

  // Inserts `row`; an id already in the table ends the process (every id of
  // a run is new).
  void insert(const SqliteUsageRow& row) {
    bind_text(1, row.id);
    bind_text(2, row.tenant_id);
    sqlite3_bind_int64(insert_, 3, row.product);
    bind_text(4, row.item);
    bind_text(5, row.variant);
    sqlite3_bind_int64(insert_, 6, row.quantity);
    sqlite3_bind_int64(insert_, 7, row.unit_nanos);
    sqlite3_bind_int64(insert_, 8, row.start_us);
    sqlite3_bind_int64(insert_, 9, row.end_us);
    bind_text(10, row.source_id);
    step_and_reset(insert_, "insert");
    if (sqlite3_changes(db_) != 1) die("sqlite: event " + std::string(row.id) + " was already there");
  }

  void commit() { step_and_reset(commit_, "commit"); }

  // The rows in the table.
  std::uint64_t rows() {
    sqlite3_stmt* count = nullptr;
    or_die(sqlite3_prepare_v2(db_, "SELECT count(*) FROM usage_events", -1, &count, nullptr), "prepare count");
    or_die(sqlite3_step(count), "count");
    const auto rows = static_cast<std::uint64_t>(sqlite3_column_int64(count, 0));
    sqlite3_finalize(count);
    return rows;
  }

 private:
  [[noreturn]] void die(const std::string& message) const {
    std::fprintf(stderr, "%s%s\n", message_prefix_.c_str(), message.c_str());
    std::exit(1);
  }

  void or_die(int rc, const char* what) const {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
      die(std::string("sqlite ") + what + ": " + sqlite3_errmsg(db_));
    }
  }

  void bind_text(int column, std::string_view text) {
    sqlite3_bind_text(insert_, column, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
  }

  void step_and_reset(sqlite3_stmt* statement, const char* what) {
    or_die(sqlite3_step(statement), what);
    sqlite3_reset(statement);
  }

  std::string message_prefix_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* begin_ = nullptr;
  sqlite3_stmt* commit_ = nullptr;
};

}  // namespace headroom::bench
