#include "common/json.h"

#include <boost/json/parse.hpp>

#include "common/limits.h"

namespace headroom {

Result<boost::json::object> parse_json_object(std::string_view text) {
  if (text.empty()) return Status::invalid_argument("the request body is empty: send a JSON object");
  boost::json::parse_options options;
  options.max_depth = limits::kJsonDepth;
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(text, ec, {}, options);
  if (ec) return Status::invalid_argument("the request body is not valid JSON: " + ec.message());
  if (!value.is_object()) return Status::invalid_argument("the request body must be a JSON object");
  return std::move(value.get_object());
}

}  // namespace headroom
