#include "cli/config_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <toml++/toml.h>

namespace headroom::cli {
namespace {

Result<std::optional<std::string>> string_key(const toml::table& table, std::string_view key, std::string_view source) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return std::optional<std::string>();
  const auto* text = node->as_string();
  if (text == nullptr) {
    return Status::invalid_argument(std::string(source) + ":" + std::to_string(node->source().begin.line) + ": '" +
                                    std::string(key) + "' must be a string");
  }
  return std::optional<std::string>(text->get());
}

}  // namespace

std::optional<std::string> cli_config_path(const GetEnv& getenv) {
  const std::optional<std::string> xdg = getenv("XDG_CONFIG_HOME");
  if (xdg && !xdg->empty() && xdg->front() == '/') return *xdg + "/headroom/config.toml";
  const std::optional<std::string> home = getenv("HOME");
  if (home && !home->empty()) return *home + "/.config/headroom/config.toml";
  return std::nullopt;
}

Result<CliConfig> parse_cli_config(std::string_view text, std::string_view source) {
  toml::table table;
#if TOML_EXCEPTIONS
  try {
    table = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Status::invalid_argument(std::string(source) + ":" + std::to_string(e.source().begin.line) + ": " +
                                    std::string(e.description()));
  }
#else
  toml::parse_result parsed = toml::parse(text, source);
  if (!parsed) {
    return Status::invalid_argument(std::string(source) + ":" + std::to_string(parsed.error().source().begin.line) +
                                    ": " + std::string(parsed.error().description()));
  }
  table = std::move(parsed).table();
#endif
  CliConfig config;
  HR_ASSIGN_OR_RETURN(config.url, string_key(table, "url", source));
  HR_ASSIGN_OR_RETURN(config.api_key, string_key(table, "api_key", source));
  return config;
}

Result<CliConfig> read_cli_config(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return CliConfig{};
    return Status::invalid_argument("cannot read config file " + path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(info.st_mode)) return Status::invalid_argument("config file " + path + " is not a regular file");
  if (static_cast<std::size_t>(info.st_size) > kCliConfigFileBytes) {
    return Status::invalid_argument("config file " + path + " is over " + std::to_string(kCliConfigFileBytes) +
                                    " bytes");
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) return Status::invalid_argument("cannot read config file " + path);
  std::string text;
  text.resize(kCliConfigFileBytes + 1);
  file.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(file.gcount()));
  if (text.size() > kCliConfigFileBytes) {
    return Status::invalid_argument("config file " + path + " is over " + std::to_string(kCliConfigFileBytes) +
                                    " bytes");
  }
  HR_ASSIGN_OR_RETURN(CliConfig config, parse_cli_config(text, path));
  config.readable_by_others = (info.st_mode & (S_IRGRP | S_IROTH)) != 0;
  return config;
}

}  // namespace headroom::cli
