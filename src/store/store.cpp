#include "store/store.h"

#include "store/postgres/postgres_store.h"
#include "store/sqlite/sqlite_store.h"

namespace headroom::store {

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& options) {
  std::string_view url = options.url;
  if (is_postgres_url(url)) {
    return open_postgres_store(options.url);
  }
  if (url.starts_with("sqlite:")) url.remove_prefix(7);
  if (url.empty()) return Status::invalid_argument("no store given (expected sqlite:PATH or postgres://...)");
  return open_sqlite_store(std::string(url));
}

}  // namespace headroom::store
