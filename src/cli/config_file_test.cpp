#include "cli/config_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

namespace headroom::cli {
namespace {

GetEnv env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ConfigFile, PathFollowsXdgThenHome) {
  EXPECT_EQ(cli_config_path(env_of({{"XDG_CONFIG_HOME", "/x/cfg"}, {"HOME", "/home/u"}})),
            "/x/cfg/headroom/config.toml");
  EXPECT_EQ(cli_config_path(env_of({{"HOME", "/home/u"}})), "/home/u/.config/headroom/config.toml");
  // XDG says a relative or empty XDG_CONFIG_HOME is to be ignored.
  EXPECT_EQ(cli_config_path(env_of({{"XDG_CONFIG_HOME", "rel"}, {"HOME", "/home/u"}})),
            "/home/u/.config/headroom/config.toml");
  EXPECT_EQ(cli_config_path(env_of({{"XDG_CONFIG_HOME", ""}, {"HOME", "/home/u"}})),
            "/home/u/.config/headroom/config.toml");
  EXPECT_EQ(cli_config_path(env_of({})), std::nullopt);
}

TEST(ConfigFile, ParsesUrlAndKey) {
  auto config = parse_cli_config(R"(
# written by hand
url = "https://headroom.example"
api_key = "hr_abc"
future_key = 3
)",
                                 "config.toml");
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(config->url, "https://headroom.example");
  EXPECT_EQ(config->api_key, "hr_abc");
}

TEST(ConfigFile, KeysAreOptional) {
  auto config = parse_cli_config("url = \"http://x\"\n", "config.toml");
  ASSERT_TRUE(config.is_ok());
  EXPECT_EQ(config->url, "http://x");
  EXPECT_EQ(config->api_key, std::nullopt);
  auto empty = parse_cli_config("", "config.toml");
  ASSERT_TRUE(empty.is_ok());
  EXPECT_EQ(empty->url, std::nullopt);
}

TEST(ConfigFile, ErrorsNameTheFileAndLine) {
  auto bad_syntax = parse_cli_config("url = \"http://x\"\napi_key = \n", "/c/config.toml");
  ASSERT_FALSE(bad_syntax.is_ok());
  EXPECT_EQ(bad_syntax.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad_syntax.status().message().rfind("/c/config.toml:2: ", 0), 0u) << bad_syntax.status().message();

  auto bad_type = parse_cli_config("\n\nurl = 8080\n", "/c/config.toml");
  ASSERT_FALSE(bad_type.is_ok());
  EXPECT_EQ(bad_type.status().message(), "/c/config.toml:3: 'url' must be a string");
}

class ConfigFileOnDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) / ("headroom_cli_config_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& text, mode_t mode) {
    const std::string path = (dir_ / "config.toml").string();
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(ConfigFileOnDisk, MissingFileIsAnEmptyConfig) {
  auto config = read_cli_config((dir_ / "nope" / "config.toml").string());
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(config->url, std::nullopt);
}

TEST_F(ConfigFileOnDisk, ReadsAFileAndSeesWhoMayReadIt) {
  auto private_file = read_cli_config(write("api_key = \"hr_k\"\n", 0600));
  ASSERT_TRUE(private_file.is_ok()) << private_file.status().to_string();
  EXPECT_EQ(private_file->api_key, "hr_k");
  EXPECT_FALSE(private_file->readable_by_others);
  auto shared_file = read_cli_config(write("api_key = \"hr_k\"\n", 0644));
  ASSERT_TRUE(shared_file.is_ok());
  EXPECT_TRUE(shared_file->readable_by_others);
}

TEST_F(ConfigFileOnDisk, RefusesDirectoriesAndHugeFiles) {
  EXPECT_EQ(read_cli_config(dir_.string()).status().code(), ErrorCode::kInvalidArgument);
  auto huge = read_cli_config(write("# " + std::string(kCliConfigFileBytes, 'x') + "\n", 0600));
  ASSERT_FALSE(huge.is_ok());
  EXPECT_NE(huge.status().message().find("over"), std::string::npos);
}

}  // namespace
}  // namespace headroom::cli
