// Text helpers for echoing outside input back safely.
#pragma once

#include <string>
#include <string_view>

namespace headroom {

// `text` with every invalid UTF-8 sequence replaced by U+FFFD, so that an
// error message quoting a client's bytes is still valid JSON text.
std::string to_valid_utf8(std::string_view text);

}  // namespace headroom
