// The PostgreSQL store: the Store of a control plane that outgrew one machine.
// Several `headroom serve` processes may share one database, so nothing a
// second process would need is kept only in memory: every answer comes from
// the database.
//
// Contract:
//  - Thread-safe: any number of threads may call one store at once. Each call
//    borrows one connection from a pool of at most
//    limits::kStorePostgresConnections (opened lazily, replaced when the server
//    drops them) and holds it for the length of its transaction; a call that
//    finds none free within limits::kStoreBusyTimeoutMs fails as unavailable.
//  - Every write is one transaction (BEGIN ... COMMIT): a change and its audit
//    record commit together or not at all. A commit is durable when the
//    server's synchronous_commit is on (its default).
//  - Every value reaches the server as a parameter of a prepared statement,
//    never spliced into SQL text.
//  - A server that is down, refuses or drops the connection is a Status
//    (unavailable) naming what failed; nothing throws or crashes. A call that
//    finds its pooled connection dead before it did anything retries once on a
//    fresh one, so a server restart costs no errors once it is back.
//  - The schema is the SQLite store's, versioned the same way (the table
//    schema_migrations); migrations run at open under a transaction-scoped
//    advisory lock, so processes opening a new database at once apply each
//    migration exactly once.
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace headroom::store {

// `url`: a libpq URI, "postgres://user@host:port/dbname?param=value...".
// invalid_argument when it does not parse; unavailable when the server cannot
// be reached or refuses; conflict when the database's schema is newer than
// this build.
Result<std::unique_ptr<Store>> open_postgres_store(const std::string& url);

// The URL with any password replaced by "***", for messages and logs.
std::string redact_postgres_url(const std::string& url);

}  // namespace headroom::store
