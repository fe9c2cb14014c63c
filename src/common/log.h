// Structured logs through spdlog: text for people, JSON lines for machines.
//
//   init_logging({.format = LogFormat::kJson, .level = spdlog::level::info});
//   spdlog::info("listening on {}", url);
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

#include "common/status.h"

namespace headroom {

enum class LogFormat { kText, kJson };

struct LogOptions {
  LogFormat format = LogFormat::kText;
  spdlog::level::level_enum level = spdlog::level::info;
};

// Sets the default logger (to stderr). Call once, before threads start.
void init_logging(const LogOptions& options);

Result<LogFormat> parse_log_format(std::string_view text);
Result<spdlog::level::level_enum> parse_log_level(std::string_view text);

}  // namespace headroom
