// Fuzz target for the config file parser: any text gives a config or a clear
// error, never a crash or an escaping exception.
#include <cstdint>
#include <string_view>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = headroom::config::parse_config(text, "fuzz.toml");
  if (!config) CHECK(!config.status().message().empty());
  return 0;
}
