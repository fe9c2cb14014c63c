// The built-in model: ../models/stories260K.gguf, compiled into the binary so
// that `headroom serve` with no config serves a real model at once.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "common/status.h"

namespace headroom::gateway {

inline constexpr std::string_view kBuiltinModelName = "stories260K";

// The file's bytes.
std::span<const unsigned char> builtin_model_bytes();

// Writes the built-in model to `dir`/stories260K.gguf unless a file with the
// same bytes is there, and returns its path.
Result<std::string> materialize_builtin_model(const std::string& dir);

}  // namespace headroom::gateway
