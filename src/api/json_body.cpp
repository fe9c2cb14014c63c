#include "api/json_body.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "common/json.h"
#include "common/limits.h"

namespace headroom::api {

Result<JsonBody> JsonBody::parse(std::string_view body) {
  HR_ASSIGN_OR_RETURN(boost::json::object object, parse_json_object(body));
  return JsonBody(std::move(object));
}

Status JsonBody::only_fields(std::initializer_list<std::string_view> known) const {
  for (const auto& field : object_) {
    bool ok = false;
    for (std::string_view k : known) ok = ok || field.key() == k;
    if (!ok) {
      std::string list;
      for (std::string_view k : known) {
        if (!list.empty()) list += ", ";
        list += k;
      }
      return Status::invalid_argument("unknown field \"" + std::string(field.key().substr(0, 64)) +
                                      "\" (expected " + list + ")");
    }
  }
  return Status::ok();
}

Result<std::string> JsonBody::required_string(std::string_view field, std::size_t max_bytes) const {
  const boost::json::value* v = object_.if_contains(field);
  if (v == nullptr || v->is_null()) return Status::invalid_argument("missing field \"" + std::string(field) + "\"");
  if (!v->is_string()) return Status::invalid_argument("field \"" + std::string(field) + "\" must be a string");
  const auto& s = v->get_string();
  if (s.empty()) return Status::invalid_argument("field \"" + std::string(field) + "\" must not be empty");
  if (s.size() > max_bytes) {
    return Status::invalid_argument("field \"" + std::string(field) + "\" is longer than " +
                                    std::to_string(max_bytes) + " bytes");
  }
  return std::string(s);
}

Result<std::optional<std::string>> JsonBody::optional_string(std::string_view field, std::size_t max_bytes) const {
  const boost::json::value* v = object_.if_contains(field);
  if (v == nullptr || v->is_null()) return std::optional<std::string>();
  HR_ASSIGN_OR_RETURN(std::string s, required_string(field, max_bytes));
  return std::optional<std::string>(std::move(s));
}

Result<std::optional<Timestamp>> JsonBody::optional_time(std::string_view field) const {
  HR_ASSIGN_OR_RETURN(std::optional<std::string> text, optional_string(field, 64));
  if (!text) return std::optional<Timestamp>();
  auto t = parse_rfc3339(*text);
  if (!t) return Status::invalid_argument("field \"" + std::string(field) + "\": " + t.status().message());
  return std::optional<Timestamp>(*t);
}

Result<std::vector<std::string>> JsonBody::required_string_array(std::string_view field, std::size_t max_items,
                                                                 std::size_t max_bytes) const {
  const boost::json::value* v = object_.if_contains(field);
  if (v == nullptr || v->is_null()) return Status::invalid_argument("missing field \"" + std::string(field) + "\"");
  if (!v->is_array()) {
    return Status::invalid_argument("field \"" + std::string(field) + "\" must be an array of strings");
  }
  const auto& array = v->get_array();
  if (array.size() > max_items) {
    return Status::invalid_argument("field \"" + std::string(field) + "\" has more than " +
                                    std::to_string(max_items) + " items");
  }
  std::vector<std::string> out;
  for (const auto& item : array) {
    if (!item.is_string() || item.get_string().size() > max_bytes) {
      return Status::invalid_argument("field \"" + std::string(field) + "\" must be an array of short strings");
    }
    out.emplace_back(item.get_string());
  }
  return out;
}

void write_json(net::HttpResponse& response, int status, const boost::json::value& body) {
  response.status = status;
  response.content_type = "application/json";
  response.body = boost::json::serialize(body);
}

boost::json::value json_time(const std::optional<Timestamp>& t) {
  if (!t) return nullptr;
  return boost::json::string(to_rfc3339(*t));
}

}  // namespace headroom::api
