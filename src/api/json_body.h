// Reading JSON request bodies with limits and clear errors, and writing JSON
// responses. Every error names the field that was wrong.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "net/http.h"

namespace headroom::api {

// A JSON object from a request body. Parsing enforces limits::kJsonDepth and
// valid UTF-8; a body that is not one JSON object is an invalid_argument.
class JsonBody {
 public:
  static Result<JsonBody> parse(std::string_view body);

  // Rejects fields not in `known`, so that a typo is an error, not a default.
  Status only_fields(std::initializer_list<std::string_view> known) const;

  Result<std::string> required_string(std::string_view field, std::size_t max_bytes) const;
  // Absent or null: nullopt.
  Result<std::optional<std::string>> optional_string(std::string_view field, std::size_t max_bytes) const;
  Result<std::optional<Timestamp>> optional_time(std::string_view field) const;
  Result<std::vector<std::string>> required_string_array(std::string_view field, std::size_t max_items,
                                                         std::size_t max_bytes) const;

  const boost::json::object& object() const { return object_; }

 private:
  explicit JsonBody(boost::json::object object) : object_(std::move(object)) {}
  boost::json::object object_;
};

// Sets a JSON body and status.
void write_json(net::HttpResponse& response, int status, const boost::json::value& body);

// Time as RFC 3339 text, or null.
boost::json::value json_time(const std::optional<Timestamp>& t);

}  // namespace headroom::api
