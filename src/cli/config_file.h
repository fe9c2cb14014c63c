// The client's config file, read when neither a flag nor the environment
// says where the server is or which key to use:
//
//   # $XDG_CONFIG_HOME/headroom/config.toml, else ~/.config/headroom/config.toml
//   url = "https://headroom.example"
//   api_key = "hr_..."
//
// Other keys are ignored, so that later versions may add some.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace headroom::cli {

// The longest config file read; a bigger one is an error, not a truncation.
inline constexpr std::size_t kCliConfigFileBytes = 64 * 1024;

struct CliConfig {
  std::optional<std::string> url;
  std::optional<std::string> api_key;
  // The file may be read by users other than its owner: a key in it is not
  // secret, and the CLI says so.
  bool readable_by_others = false;
};

// Reads an environment variable; nullopt when unset.
using GetEnv = std::function<std::optional<std::string>(const char* name)>;

// Where the config file is: $XDG_CONFIG_HOME/headroom/config.toml when that
// variable holds an absolute path (the XDG rule), else
// $HOME/.config/headroom/config.toml; nullopt when neither is set.
std::optional<std::string> cli_config_path(const GetEnv& getenv);

// Parses the file's text; `source` names it in errors. Errors are
// invalid_argument with the line, such as "config.toml:3: ...".
Result<CliConfig> parse_cli_config(std::string_view text, std::string_view source);

// Reads and parses the file at `path`. A file that does not exist is an
// empty config, not an error.
Result<CliConfig> read_cli_config(const std::string& path);

}  // namespace headroom::cli
