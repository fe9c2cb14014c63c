// Small pieces every route group uses: list pages, audit records.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <string>

#include "api/json_body.h"
#include "api/router.h"
#include "api/services.h"
#include "store/records.h"

namespace headroom::api {

// The request's Idempotency-Key header, checked (at most
// limits::kIdempotencyKeyBytes of printable ASCII); empty when absent.
Result<std::string_view> idempotency_key(const net::HttpRequest& http);

// ?limit= and ?after= of a list route, checked.
Result<store::PageRequest> page_request(const net::HttpRequest& http);

// {"data":[...],"has_more":bool}
template <typename T, typename ToJson>
void write_page(net::HttpResponse& response, const store::Page<T>& page, ToJson to_json) {
  boost::json::array data;
  data.reserve(page.items.size());
  for (const auto& item : page.items) data.emplace_back(to_json(item));
  write_json(response, 200, boost::json::object{{"data", std::move(data)}, {"has_more", page.has_more}});
}

// Whether the client asks for CSV (Accept: text/csv) rather than JSON.
bool wants_csv(const net::HttpRequest& http);
// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
std::string csv_field(std::string_view text);

// ?from= and ?to= as RFC 3339 times, each over its default when absent;
// invalid_argument naming the one that is not a time.
Status read_period(const net::HttpRequest& http, Timestamp& from, Timestamp& to);

// The audit record of an action the caller takes, written with the change.
store::AuditRecord audit(Services& s, const RequestContext& ctx, std::string action, std::string target,
                         boost::json::object details);

}  // namespace headroom::api
