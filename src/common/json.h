// Parsing a JSON object from outside (a request body, a stored document)
// under the limits every reader shares: limits::kJsonDepth nesting, valid
// UTF-8, one object. Stateless and thread-safe.
#pragma once

#include <boost/json/object.hpp>

#include <string_view>

#include "common/status.h"

namespace headroom {

// invalid_argument saying what is wrong with `text` (empty, not JSON, not an object).
Result<boost::json::object> parse_json_object(std::string_view text);

}  // namespace headroom
