// The SQLite store: one database file in WAL mode, synchronous=FULL, with
// versioned migrations applied at open. One connection behind a mutex: the
// control plane's writes are few and small, and WAL keeps them cheap.
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace headroom::store {

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path);

}  // namespace headroom::store
