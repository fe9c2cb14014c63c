#include "api/route_util.h"

#include <boost/json/serialize.hpp>

#include "common/ids.h"
#include "common/limits.h"

namespace headroom::api {

namespace json = boost::json;

Result<std::string_view> idempotency_key(const net::HttpRequest& http) {
  std::string_view key = http.header("idempotency-key");
  if (key.size() > limits::kIdempotencyKeyBytes) {
    return Status::invalid_argument("the Idempotency-Key header is longer than " +
                                    std::to_string(limits::kIdempotencyKeyBytes) + " bytes");
  }
  for (char c : key) {
    if (c < 0x21 || c > 0x7e) return Status::invalid_argument("the Idempotency-Key header must be printable ASCII");
  }
  return key;
}

Result<store::PageRequest> page_request(const net::HttpRequest& http) {
  store::PageRequest page;
  std::string value;
  if (net::query_param(http.query, "limit", value)) {
    std::size_t limit = 0;
    bool ok = !value.empty() && value.size() <= 6;
    for (char c : value) ok = ok && c >= '0' && c <= '9';
    if (ok) limit = std::stoul(value);
    if (!ok || limit < 1 || limit > limits::kListPageSizeMax) {
      return Status::invalid_argument("query parameter \"limit\" must be a whole number from 1 to " +
                                      std::to_string(limits::kListPageSizeMax));
    }
    page.limit = limit;
  }
  if (net::query_param(http.query, "after", value)) {
    if (value.size() > 64) return Status::invalid_argument("query parameter \"after\" is not an id");
    page.after = value;
  }
  return page;
}

store::AuditRecord audit(Services& s, const RequestContext& ctx, std::string action, std::string target,
                         json::object details) {
  store::AuditRecord a;
  a.id = make_id(kAuditIdPrefix, s.random);
  a.time = s.clock.now();
  a.actor_tenant_id = ctx.caller.tenant_id();
  a.actor_key_id = ctx.caller.key().id;
  a.request_id = std::string(ctx.http.request_id);
  a.action = std::move(action);
  a.target_id = std::move(target);
  a.details_json = json::serialize(details);
  return a;
}

bool wants_csv(const net::HttpRequest& http) {
  return http.header("accept").find("text/csv") != std::string_view::npos;
}

std::string csv_field(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

Status read_period(const net::HttpRequest& http, Timestamp& from, Timestamp& to) {
  std::string value;
  for (auto [name, slot] : {std::pair{"from", &from}, std::pair{"to", &to}}) {
    if (!net::query_param(http.query, name, value)) continue;
    auto t = parse_rfc3339(value);
    if (!t) {
      return Status::invalid_argument(std::string("query parameter \"") + name +
                                      "\" must be an RFC 3339 time such as 2026-11-01T00:00:00Z");
    }
    *slot = *t;
  }
  return Status::ok();
}

}  // namespace headroom::api
