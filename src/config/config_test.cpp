#include "config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <string>

namespace headroom::config {
namespace {

constexpr std::string_view kSmallFleet = R"(
[server]
listen = "0.0.0.0:9000"
data_dir = "/var/lib/headroom"
threads = 8
tls_cert = "/etc/headroom/cert.pem"
tls_key = "/etc/headroom/key.pem"

[log]
format = "json"
level = "debug"

[fleet]
virtual = false

[[fleet.gpu_types]]
name = "h100"
display_name = "NVIDIA H100 80GB HBM3"
memory_gib = 80

[[fleet.gpu_types]]
name = "gb200"
memory_gib = 186

[[fleet.nodes]]
name = "hgx-{:03}"
count = 3
region = "us-east"
site = "iad1"
cluster = "iad1-a"
rack = { pattern = "r{:02}", every = 2 }
block = "b1"
gpu_type = "h100"
gpus = 8

[[fleet.nodes]]
name = "gb-{}"
count = 36
first = 0
region = "eu-west"
site = "ams1"
cluster = "ams1-nvl"
nvlink_domain = { pattern = "nvl72-{}", every = 18 }
gpu_type = "gb200"
gpus = 4
state = "cordoned"
)";

Result<ServeConfig> parse(std::string_view text) { return parse_config(text, "test.toml"); }

// Parsing fails with invalid_argument and a message holding each fragment.
void expect_error(std::string_view text, std::initializer_list<std::string_view> fragments) {
  auto config = parse(text);
  ASSERT_FALSE(config.is_ok()) << "parsed:\n" << text;
  EXPECT_EQ(config.status().code(), ErrorCode::kInvalidArgument) << config.status().to_string();
  for (std::string_view fragment : fragments) {
    EXPECT_NE(config.status().message().find(fragment), std::string::npos)
        << "message: " << config.status().message() << "\nlacks: " << fragment;
  }
}

// A minimal valid fleet with `node_lines` as its one [[fleet.nodes]] entry.
std::string fleet_with_node(std::string_view node_lines) {
  return "[[fleet.gpu_types]]\nname = \"h100\"\nmemory_gib = 80\n\n[[fleet.nodes]]\n" + std::string(node_lines);
}

constexpr std::string_view kNodeBasics =
    "region = \"us-east\"\nsite = \"iad1\"\ncluster = \"iad1-a\"\ngpu_type = \"h100\"\ngpus = 8\n";

TEST(Config, EmptyTextGivesTheDefaults) {
  auto config = parse("");
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(config->listen, "127.0.0.1:8080");
  EXPECT_EQ(config->data_dir, "./headroom-data");
  EXPECT_EQ(config->store, "") << "SQLite in data_dir";
  EXPECT_EQ(config->threads, 0u);
  EXPECT_FALSE(config->tls_cert.has_value());
  EXPECT_FALSE(config->tls_key.has_value());
  EXPECT_EQ(config->log.format, LogFormat::kText);
  EXPECT_EQ(config->log.level, spdlog::level::info);
  EXPECT_FALSE(config->fleet.has_value()) << "no [fleet]: detect locally";
  EXPECT_EQ(config->source, "test.toml");
  EXPECT_EQ(ServeConfig{}.source, "defaults");
}

TEST(Config, ParsesAFullConfig) {
  auto config = parse(kSmallFleet);
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(config->listen, "0.0.0.0:9000");
  EXPECT_EQ(config->data_dir, "/var/lib/headroom");
  EXPECT_EQ(config->threads, 8u);
  EXPECT_EQ(config->tls_cert, "/etc/headroom/cert.pem");
  EXPECT_EQ(config->tls_key, "/etc/headroom/key.pem");
  EXPECT_EQ(config->log.format, LogFormat::kJson);
  EXPECT_EQ(config->log.level, spdlog::level::debug);

  ASSERT_TRUE(config->fleet.has_value());
  const fleet::FleetSpec& fleet = *config->fleet;
  EXPECT_TRUE(fleet::validate(fleet).is_ok());
  EXPECT_FALSE(fleet.is_virtual);
  EXPECT_EQ(fleet.source, "config");
  ASSERT_EQ(fleet.gpu_types.size(), 2u);
  EXPECT_EQ(fleet.gpu_types[0].name, "h100");
  EXPECT_EQ(fleet.gpu_types[0].display_name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(fleet.gpu_types[0].memory_mib, 80 * 1024);
  EXPECT_EQ(fleet.gpu_types[1].memory_mib, 186 * 1024);
  ASSERT_EQ(fleet.nodes.size(), 39u);
  EXPECT_EQ(fleet::gpu_count(fleet), 3u * 8 + 36u * 4);

  const fleet::Node& hgx = fleet.nodes[2];
  EXPECT_EQ(hgx.name, "hgx-003");
  EXPECT_EQ(hgx.region, "us-east");
  EXPECT_EQ(hgx.site, "iad1");
  EXPECT_EQ(hgx.cluster, "iad1-a");
  EXPECT_EQ(hgx.rack, "r02");
  EXPECT_EQ(hgx.block, "b1");
  EXPECT_EQ(hgx.nvlink_domain, "hgx-003") << "an HGX node is its own domain";
  EXPECT_EQ(hgx.state, fleet::NodeState::kUp);
  ASSERT_EQ(hgx.gpus.size(), 8u);
  EXPECT_EQ(hgx.gpus[7].index, 7u);
  EXPECT_EQ(hgx.gpus[7].type, "h100");
  EXPECT_EQ(hgx.gpus[7].uuid, "");

  EXPECT_EQ(fleet.nodes[3].name, "gb-0");
  EXPECT_EQ(fleet.nodes[3].nvlink_domain, "nvl72-1");
  EXPECT_EQ(fleet.nodes[3].rack, "");
  EXPECT_EQ(fleet.nodes[3].state, fleet::NodeState::kCordoned);
  EXPECT_EQ(fleet.nodes[3 + 17].nvlink_domain, "nvl72-1");
  EXPECT_EQ(fleet.nodes[3 + 18].name, "gb-18");
  EXPECT_EQ(fleet.nodes[3 + 18].nvlink_domain, "nvl72-2");
  EXPECT_EQ(fleet.nodes.back().name, "gb-35");
}

TEST(Config, PatternExpansion) {
  auto names = [](std::string_view name_lines) {
    std::vector<std::string> out;
    auto config = parse(fleet_with_node(std::string(name_lines) + std::string(kNodeBasics)));
    EXPECT_TRUE(config.is_ok()) << config.status().to_string();
    if (config.is_ok()) {
      for (const auto& node : config->fleet->nodes) out.push_back(node.name);
    }
    return out;
  };
  EXPECT_EQ(names("name = \"n{}\"\ncount = 3\n"), (std::vector<std::string>{"n1", "n2", "n3"}));
  EXPECT_EQ(names("name = \"n{:02}\"\ncount = 2\nfirst = 9\n"), (std::vector<std::string>{"n09", "n10"}));
  EXPECT_EQ(names("name = \"n{:2}x\"\ncount = 2\nfirst = 10\n"), (std::vector<std::string>{"n10x", "n11x"}));
  EXPECT_EQ(names("name = \"{:03}.iad1\"\ncount = 1\nfirst = 0\n"), (std::vector<std::string>{"000.iad1"}));
  EXPECT_EQ(names("name = \"solo\"\n"), (std::vector<std::string>{"solo"}));
  EXPECT_EQ(names("name = \"n{}\"\n"), (std::vector<std::string>{"n1"}));
  EXPECT_EQ(names("name = \"n{:01}\"\ncount = 2\nfirst = 99\n"), (std::vector<std::string>{"n99", "n100"}));
}

TEST(Config, GroupedNames) {
  auto config = parse(fleet_with_node(
      "name = \"n{:02}\"\ncount = 10\n" + std::string(kNodeBasics) +
      "rack = { pattern = \"r{:02}\", every = 4, first = 7 }\nblock = { pattern = \"blk{}\", every = 5 }\n"
      "nvlink_domain = \"shared\"\n"));
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  const auto& nodes = config->fleet->nodes;
  std::vector<std::string> racks, blocks;
  for (const auto& node : nodes) {
    racks.push_back(node.rack);
    blocks.push_back(node.block);
    EXPECT_EQ(node.nvlink_domain, "shared");
  }
  EXPECT_EQ(racks, (std::vector<std::string>{"r07", "r07", "r07", "r07", "r08", "r08", "r08", "r08", "r09", "r09"}));
  EXPECT_EQ(blocks,
            (std::vector<std::string>{"blk1", "blk1", "blk1", "blk1", "blk1", "blk2", "blk2", "blk2", "blk2", "blk2"}));
}

TEST(Config, PatternErrors) {
  const std::string basics(kNodeBasics);
  expect_error(fleet_with_node("name = \"n\"\ncount = 4\n" + basics),
               {"test.toml:7:9: fleet.nodes[0].count: count = 4 needs a numbered name, such as \"n-{:03}\""});
  expect_error(fleet_with_node("name = \"n\"\nfirst = 4\n" + basics), {"fleet.nodes[0].first", "has none"});
  expect_error(fleet_with_node("name = \"n{:x}\"\ncount = 2\n" + basics), {"fleet.nodes[0].name", "bad placeholder"});
  expect_error(fleet_with_node("name = \"n{\"\ncount = 2\n" + basics), {"unclosed '{'"});
  expect_error(fleet_with_node("name = \"n}\"\n" + basics), {"stray '}'"});
  expect_error(fleet_with_node("name = \"n{}{}\"\ncount = 2\n" + basics), {"more than one placeholder"});
  expect_error(fleet_with_node("name = \"n{:00}\"\ncount = 2\n" + basics), {"width must be 1 to 20"});
  expect_error(fleet_with_node("name = \"n{:99}\"\ncount = 2\n" + basics), {"width must be 1 to 20"});
  expect_error(fleet_with_node("name = \"n {}\"\ncount = 2\n" + basics),
               {"fleet.nodes[0].name", "makes \"n 1\", which is not a valid node name"});
  expect_error(fleet_with_node("name = \"n{:3}\"\ncount = 2\n" + basics), {"makes \"n  1\""});
  expect_error(fleet_with_node("name = \"n{}\"\ncount = 2\n" + basics + "rack = \"r{}\"\n"),
               {"fleet.nodes[0].rack", "rack = { pattern = \"r{}\", every = N }"});
  expect_error(fleet_with_node("name = \"n{}\"\ncount = 2\n" + basics + "rack = { pattern = \"r\", every = 2 }\n"),
               {"fleet.nodes[0].rack.pattern", "has no {} placeholder"});
  expect_error(fleet_with_node("name = \"n{}\"\ncount = 2\n" + basics + "rack = { pattern = \"r{}\" }\n"),
               {"fleet.nodes[0].rack", "missing required key \"every\""});
  expect_error(fleet_with_node("name = \"n{}\"\ncount = 2\n" + basics + "rack = { pattern = \"r{}\", every = 0 }\n"),
               {"fleet.nodes[0].rack.every", "0 is out of range (1 to 50000)"});
  expect_error(fleet_with_node("name = \"n{}\"\ncount = 2\n" + basics + "rack = { pattern = \"r{}\", evry = 2 }\n"),
               {"unknown key \"evry\" (did you mean \"every\"?)"});
  expect_error(fleet_with_node("name = \"n{}\"\ncount = 2\n" + basics + "rack = 5\n"),
               {"fleet.nodes[0].rack", "expected a string or { pattern"});
  expect_error(fleet_with_node("name = \"n{}\"\ncount = 2\n" + basics + "rack = \"r 1\"\n"),
               {"fleet.nodes[0].rack", "makes \"r 1\", which is not a valid name"});
}

TEST(Config, UnknownKeysAreErrors) {
  expect_error("[server]\nlisten = \"127.0.0.1:1\"\nthreds = 4\n",
               {"test.toml:3:1: server: unknown key \"threds\" (did you mean \"threads\"?)"});
  expect_error("[servr]\nlisten = \"127.0.0.1:1\"\n",
               {"(top level): unknown key \"servr\" (did you mean \"server\"?)"});
  expect_error("[log]\ncolour = true\n", {"log: unknown key \"colour\" (known keys: format level)"});
  expect_error(fleet_with_node("name = \"n\"\n" + std::string(kNodeBasics) + "gpu = 8\n"),
               {"fleet.nodes[0]: unknown key \"gpu\""});
  expect_error("[[fleet.gpu_types]]\nname = \"h100\"\nmemory_gb = 80\n",
               {"fleet.gpu_types[0]: unknown key \"memory_gb\""});
  expect_error("[fleet]\nvirtal = true\n", {"fleet: unknown key \"virtal\" (did you mean \"virtual\"?)"});
  expect_error("top = 1\n", {"unknown key \"top\""});
}

TEST(Config, StoreUrl) {
  for (std::string url : {"postgres://headroom@db.internal:5432/headroom", "postgresql:///headroom?host=/run/pg",
                          "sqlite:/var/lib/headroom/headroom.db"}) {
    auto config = parse("[server]\nstore = \"" + url + "\"\n");
    ASSERT_TRUE(config.is_ok()) << url << ": " << config.status().to_string();
    EXPECT_EQ(config->store, url);
  }
}

TEST(Config, AdvertiseUrl) {
  for (std::string url : {"http://10.0.0.5:8080", "https://gpu-a.internal:443", "http://[::1]:8080"}) {
    auto config = parse("[server]\nadvertise_url = \"" + url + "\"\n");
    ASSERT_TRUE(config.is_ok()) << url << ": " << config.status().to_string();
    EXPECT_EQ(config->advertise_url, url);
  }
  EXPECT_EQ(parse("").value().advertise_url, "");
  for (std::string url : {"10.0.0.5:8080", "http://", "http://h:1/path", "ftp://h:1", "http://h 1"}) {
    expect_error("[server]\nadvertise_url = \"" + url + "\"\n",
                 {"server.advertise_url: expected http://HOST:PORT or https://HOST:PORT (no path), got \"" + url + "\""});
  }
}

TEST(Config, TypeErrors) {
  expect_error("[server]\nthreads = \"4\"\n", {"test.toml:2:11: server.threads: expected an integer, got a string"});
  expect_error("[server]\nthreads = 4.0\n", {"server.threads: expected an integer, got a float"});
  expect_error("[server]\nlisten = 8080\n", {"server.listen: expected a string, got an integer"});
  expect_error("[server]\ndata_dir = [\"a\"]\n", {"server.data_dir: expected a string, got an array"});
  expect_error("server = 1\n", {"server: expected a table, got an integer"});
  expect_error("[fleet]\nvirtual = \"yes\"\n", {"fleet.virtual: expected true or false, got a string"});
  expect_error("[[fleet.gpu_types]]\nname = \"h100\"\nmemory_gib = 80\n[fleet.nodes]\nname = \"n\"\n",
               {"fleet.nodes: expected an array of tables ([[fleet.nodes]]), got a table"});
  expect_error("[fleet]\ngpu_types = [1]\n", {"fleet.gpu_types: expected a table, got an integer"});
  expect_error("[log]\nlevel = 2026-01-01\n", {"log.level: expected a string, got a date"});
}

TEST(Config, RangeAndValueErrors) {
  expect_error("[server]\nthreads = 65\n", {"server.threads: 65 is out of range (0 to 64)"});
  expect_error("[server]\nthreads = -1\n", {"out of range"});
  expect_error("[server]\ndata_dir = \"\"\n", {"server.data_dir: must not be empty"});
  expect_error("[server]\nstore = \"mysql://db/x\"\n",
               {"server.store: expected sqlite:PATH, postgres://... or postgresql://..., got \"mysql://db/x\""});
  expect_error("[server]\nstore = \"sqlite:\"\n", {"server.store: expected sqlite:PATH"});
  expect_error("[server]\ntls_cert = \"c.pem\"\n", {"server.tls_cert: tls_cert needs tls_key as well"});
  expect_error("[server]\ntls_key = \"k.pem\"\n", {"server.tls_key: tls_key needs tls_cert as well"});
  expect_error("[log]\nformat = \"xml\"\n", {"log.format", "unknown log format \"xml\""});
  expect_error("[log]\nlevel = \"verbose\"\n", {"log.level", "unknown log level \"verbose\""});
  expect_error(fleet_with_node("name = \"n\"\n" + std::string(kNodeBasics) + "state = \"broken\"\n"),
               {"fleet.nodes[0].state", "unknown node state \"broken\""});
  expect_error("[[fleet.gpu_types]]\nname = \"h100\"\nmemory_gib = 0\n",
               {"fleet.gpu_types[0].memory_gib: 0 is out of range"});
  expect_error("[[fleet.gpu_types]]\nname = \"H100\"\nmemory_gib = 80\n",
               {"fleet.gpu_types[0].name: \"H100\" is not a valid GPU type name"});
  expect_error(
      fleet_with_node(
          "name = \"n\"\nregion = \"us east\"\nsite = \"s\"\ncluster = \"c\"\ngpu_type = \"h100\"\ngpus = 8\n"),
      {"fleet.nodes[0].region: \"us east\" is not a valid name"});
  expect_error(
      fleet_with_node("name = \"n\"\nregion = \"r\"\nsite = \"s\"\ncluster = \"c\"\ngpu_type = \"h100\"\ngpus = 73\n"),
      {"fleet.nodes[0].gpus: 73 is out of range (1 to 72)"});
  expect_error(
      fleet_with_node("name = \"n\"\nregion = \"r\"\nsite = \"s\"\ncluster = \"c\"\ngpu_type = \"h200\"\ngpus = 8\n"),
      {"fleet.nodes[0].gpu_type: GPU type \"h200\" is not declared in [[fleet.gpu_types]] (declared: h100)"});
}

TEST(Config, MissingRequiredKeys) {
  expect_error("[fleet]\nvirtual = true\n", {"test.toml:1:1: fleet: missing required key \"gpu_types\""});
  expect_error("[[fleet.gpu_types]]\nname = \"h100\"\nmemory_gib = 80\n", {"fleet: missing required key \"nodes\""});
  expect_error("[[fleet.gpu_types]]\nname = \"h100\"\n",
               {"test.toml:1:1: fleet.gpu_types[0]: missing required key \"memory_gib\""});
  expect_error("[[fleet.gpu_types]]\nmemory_gib = 80\n", {"fleet.gpu_types[0]: missing required key \"name\""});
  expect_error("[fleet]\ngpu_types = []\nnodes = []\n", {"fleet.gpu_types: declares no GPU types"});
  for (std::string_view key : {"region", "site", "cluster", "gpu_type", "gpus"}) {
    std::string lines = "name = \"n\"\n";
    std::string basics(kNodeBasics);
    const auto at = basics.find(std::string(key) + " = ");
    const auto end = basics.find('\n', at);
    basics.erase(at, end - at + 1);
    expect_error(fleet_with_node(lines + basics),
                 {"test.toml:5:1: fleet.nodes[0]: missing required key \"" + std::string(key) + "\""});
  }
  expect_error(fleet_with_node(std::string(kNodeBasics)), {"fleet.nodes[0]: missing required key \"name\""});
}

TEST(Config, DuplicateNames) {
  const std::string basics(kNodeBasics);
  // hgx-3 of the second entry collides with hgx-3 of the first.
  std::string text = fleet_with_node("name = \"hgx-{}\"\ncount = 4\n" + basics) +
                     "\n[[fleet.nodes]]\nname = \"hgx-{}\"\ncount = 2\nfirst = 3\n" + basics;
  expect_error(text, {"fleet.nodes[1].name: node \"hgx-3\" is already declared at line 5"});

  expect_error(
      "[[fleet.gpu_types]]\nname = \"h100\"\nmemory_gib = 80\n[[fleet.gpu_types]]\nname = \"h100\"\nmemory_gib = 94\n",
      {"test.toml:5:8: fleet.gpu_types[1].name: GPU type \"h100\" is already declared at line 1"});
}

TEST(Config, WholeFleetChecksNameTheNode) {
  const std::string basics(kNodeBasics);
  std::string text = fleet_with_node("name = \"a\"\n" + basics) +
                     "\n[[fleet.nodes]]\nname = \"b\"\nregion = \"eu-west\"\nsite = \"iad1\"\ncluster = \"x\"\n"
                     "gpu_type = \"h100\"\ngpus = 8\n";
  expect_error(text, {"test.toml: fleet: node \"b\": site \"iad1\" is in region \"us-east\""});
}

TEST(Config, FleetSizeIsBoundedBeforeExpansion) {
  expect_error(fleet_with_node("name = \"n{}\"\ncount = 50001\n" + std::string(kNodeBasics)),
               {"fleet.nodes[0].count: 50001 is out of range (1 to 50000)"});
  const std::string group =
      "name = \"n{}\"\ncount = 30000\nregion = \"r\"\nsite = \"s\"\ncluster = \"c\"\n"
      "gpu_type = \"h100\"\ngpus = 1\n";
  expect_error(fleet_with_node(group) + "[[fleet.nodes]]\n" + group + "first = 30001\n",
               {"fleet.nodes[1].count: the fleet would have more than 50000 nodes"});
  expect_error(fleet_with_node("name = \"n{}\"\ncount = 40000\nregion = \"r\"\nsite = \"s\"\ncluster = \"c\"\n"
                               "gpu_type = \"h100\"\ngpus = 8\n"),
               {"fleet.nodes[0].count: the fleet would have more than 200000 GPUs"});
}

TEST(Config, LargeFleetParses) {
  // 12,500 HGX nodes: the 100,000-GPU fleet the product is built for.
  auto config = parse(fleet_with_node("name = \"hgx-{:05}\"\ncount = 12500\n" + std::string(kNodeBasics) +
                                      "rack = { pattern = \"r{:04}\", every = 4 }\n"));
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(fleet::gpu_count(*config->fleet), 100'000u);
  EXPECT_EQ(config->fleet->nodes.back().name, "hgx-12500");
  EXPECT_EQ(config->fleet->nodes.back().rack, "r3125");
}

TEST(Config, VirtualFleet) {
  auto config = parse("[fleet]\nvirtual = true\n" + fleet_with_node("name = \"n\"\n" + std::string(kNodeBasics)));
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_TRUE(config->fleet->is_virtual);
}

TEST(Config, TomlSyntaxErrorsNameTheLine) {
  expect_error("[server]\nlisten = \"127.0.0.1:8080\n", {"test.toml:2:"});
  expect_error("[server]\nlisten = 1\nlisten = 2\n", {"test.toml:3:"});
  expect_error("[server\n", {"test.toml:1:"});
  expect_error(std::string_view("a = \"\xff\"\n"), {"test.toml:1:"});
  expect_error(std::string_view("x = 1\0y = 2", 11), {"test.toml:1:"});
}

TEST(Config, InputTooLarge) {
  const std::string text(limits::kConfigFileBytes + 1, '\n');
  expect_error(text, {"larger than 16777216 bytes"});
}

TEST(ListenAddress, Accepts) {
  const std::map<std::string, std::pair<std::string, int>> cases = {
      {"127.0.0.1:8080", {"127.0.0.1", 8080}},
      {"0.0.0.0:443", {"0.0.0.0", 443}},
      {"[::1]:8080", {"::1", 8080}},
      {"[::]:0", {"::", 0}},
      {"localhost:65535", {"localhost", 65535}},
      {"api.example.com:80", {"api.example.com", 80}},
  };
  for (const auto& [text, expected] : cases) {
    auto address = parse_listen_address(text);
    ASSERT_TRUE(address.is_ok()) << text << ": " << address.status().to_string();
    EXPECT_EQ(address->host, expected.first);
    EXPECT_EQ(address->port, expected.second);
  }
}

TEST(ListenAddress, Rejects) {
  const std::map<std::string, std::string> cases = {
      {"127.0.0.1", "has no port"},
      {"8080", "has no port"},
      {":8080", "write 0.0.0.0:8080"},
      {"::1:8080", "an IPv6 address goes in brackets"},
      {"[::1]8080", "is not a listen address"},
      {"[::1", "is not a listen address"},
      {"[zz]:80", "\"zz\" is not an IPv6 address"},
      {"127.0.0.1:65536", "port \"65536\" is not a number"},
      {"127.0.0.1:", "port \"\" is not a number"},
      {"127.0.0.1:-1", "port \"-1\""},
      {"127.0.0.1:80x", "port \"80x\""},
      {"127.0.0.1:0080000", "port \"0080000\""},
      {"300.1.1.1:80", "\"300.1.1.1\" is not an IPv4 address or a host name"},
      {"bad host:80", "\"bad host\" is not an IPv4 address or a host name"},
      {"a..b:80", "is not an IPv4 address or a host name"},
      {"", "has no port"},
  };
  for (const auto& [text, fragment] : cases) {
    auto address = parse_listen_address(text);
    ASSERT_FALSE(address.is_ok()) << text;
    EXPECT_EQ(address.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(address.status().message().find(fragment), std::string::npos)
        << text << ": " << address.status().message();
  }
  EXPECT_FALSE(parse_listen_address(std::string(400, 'a') + ":80").is_ok());
}

TEST(ListenAddress, ConfigErrorPointsAtTheKey) {
  expect_error("[server]\nlisten = \"localhost\"\n", {"test.toml:2:10: server.listen: \"localhost\" has no port"});
}

class ConfigFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/headroom-config-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::remove((dir_ + "/headroom.toml").c_str());
    ::rmdir(dir_.c_str());
  }
  std::string write(std::string_view text) {
    const std::string path = dir_ + "/headroom.toml";
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::string dir_;
};

TEST_F(ConfigFile, Loads) {
  const std::string path = write(kSmallFleet);
  auto config = load_config_file(path);
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(config->source, path);
  EXPECT_EQ(config->fleet->nodes.size(), 39u);
}

TEST_F(ConfigFile, ErrorsNameTheFile) {
  const std::string path = write("[server]\nthreads = \"x\"\n");
  auto config = load_config_file(path);
  ASSERT_FALSE(config.is_ok());
  EXPECT_NE(config.status().message().find(path + ":2:11: server.threads"), std::string::npos)
      << config.status().message();
}

TEST_F(ConfigFile, MissingFileIsNotFound) {
  auto config = load_config_file(dir_ + "/nope.toml");
  ASSERT_FALSE(config.is_ok());
  EXPECT_EQ(config.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(config.status().message().find("nope.toml"), std::string::npos);
}

TEST_F(ConfigFile, DirectoryIsAnError) {
  auto config = load_config_file(dir_);
  ASSERT_FALSE(config.is_ok());
  EXPECT_EQ(config.status().code(), ErrorCode::kInvalidArgument);
}

TEST_F(ConfigFile, TooLargeIsAnError) {
  const std::string path = write(std::string(limits::kConfigFileBytes + 1, '#'));
  auto config = load_config_file(path);
  ASSERT_FALSE(config.is_ok());
  EXPECT_NE(config.status().message().find("is larger than"), std::string::npos);
}

// docs/headroom.example.toml must parse. The test finds the source tree
// through the environment, so it runs from any build directory.
TEST(ExampleConfig, Parses) {
  const char* source_dir = std::getenv("HEADROOM_SOURCE_DIR");
  if (source_dir == nullptr || *source_dir == '\0') GTEST_SKIP() << "HEADROOM_SOURCE_DIR is not set";
  const std::string path = std::string(source_dir) + "/docs/headroom.example.toml";
  auto config = load_config_file(path);
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  ASSERT_TRUE(config->fleet.has_value());
  const fleet::FleetSpec& fleet = *config->fleet;
  EXPECT_EQ(fleet.nodes.size(), 109u);
  EXPECT_EQ(fleet::gpu_count(fleet), 728u);
  std::set<std::string> regions, domains_of_gb200;
  for (const auto& node : fleet.nodes) {
    regions.insert(node.region);
    if (node.gpus.front().type == "gb200") domains_of_gb200.insert(node.nvlink_domain);
  }
  EXPECT_EQ(regions, (std::set<std::string>{"eu-west", "us-east"}));
  EXPECT_EQ(domains_of_gb200, (std::set<std::string>{"ams1-nvl72-01", "ams1-nvl72-02"}));
}

}  // namespace
}  // namespace headroom::config

namespace headroom::config {
namespace {

TEST(Config, ComputeSection) {
  auto config = parse_config(R"(
[compute]
spot_grace_s = 5
usage_interval_s = 10
internal_buffer = { h100 = 8 }
[compute.prices.h100]
on_demand = "2.50"
spot = "0.90"
)", "test.toml");
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(config->compute.spot_grace_s, 5);
  EXPECT_EQ(config->compute.usage_interval_s, 10);
  EXPECT_EQ(config->compute.internal_buffer.at("h100"), 8u);
  EXPECT_EQ(config->compute.prices.at("h100").on_demand->to_string(), "2.50");
  EXPECT_FALSE(config->compute.prices.at("h100").reserved.has_value());

  for (const char* bad : {"[compute]\nspot_grace = 5\n", "[compute]\nspot_grace_s = -1\n",
                          "[compute.prices.h100]\nspot = \"cheap\"\n", "[compute.prices.h100]\nbid = \"1\"\n",
                          "[compute]\ninternal_buffer = { h100 = \"x\" }\n"}) {
    auto refused = parse_config(bad, "test.toml");
    ASSERT_FALSE(refused.is_ok()) << bad;
    EXPECT_NE(refused.status().message().find("test.toml:"), std::string::npos) << refused.status().message();
  }
}

TEST(Config, MarketEconomics) {
  auto config = parse(R"(
[market.economics.h100]
purchase_price = "30000.00"
in_service = "2025-06-01T00:00:00Z"
useful_life_years = 4
salvage_value = "3000"
depreciation = "sum_of_years_digits"
power_watts = 700
pue = "1.3"
energy_price_per_kwh = "0.10"
other_cost_per_gpu_hour = "0.25"
spot_floor = "full_cost"
on_demand_floor = "marginal"
reserved_floor = "none"
floor_utilization_percent = 60
)");
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  const GpuEconomicsConfig& h100 = config->market.economics.at("h100");
  EXPECT_EQ(h100.economics.gpu_type, "h100");
  EXPECT_EQ(h100.economics.purchase_price, Money::from_dollars(30000));
  EXPECT_EQ(h100.economics.in_service, parse_rfc3339("2025-06-01T00:00:00Z").value());
  EXPECT_EQ(h100.economics.useful_life_years, 4);
  EXPECT_EQ(h100.economics.salvage_value, Money::from_dollars(3000));
  EXPECT_EQ(h100.economics.method, market::DepreciationMethod::kSumOfYearsDigits);
  EXPECT_EQ(h100.economics.power_watts, 700);
  EXPECT_EQ(h100.economics.pue_milli, 1300);
  EXPECT_EQ(h100.economics.energy_price_per_kwh.to_string(), "0.10");
  EXPECT_EQ(h100.economics.other_cost_per_gpu_hour.to_string(), "0.25");
  EXPECT_EQ(h100.spot_floor, market::FloorPolicy::kFullCost);
  EXPECT_EQ(h100.floor_utilization_permille, 600);
  EXPECT_EQ(h100.on_demand_floor, market::FloorPolicy::kMarginal);
  EXPECT_FALSE(h100.reserved_floor.has_value());

  const std::string base = "[market.economics.h100]\nin_service = \"2025-06-01T00:00:00Z\"\n";
  expect_error(base, {"test.toml:", "purchase_price: required"});
  expect_error(base + "purchase_price = \"x\"\n", {"market.economics.h100.purchase_price"});
  expect_error(base + "purchase_price = \"100\"\nsalvage_value = \"200\"\n", {"salvage_value"});
  expect_error(base + "purchase_price = \"100\"\ndepreciation = \"linear\"\n", {"depreciation", "straight_line"});
  expect_error(base + "purchase_price = \"100\"\npue = \"1.3333\"\n", {"pue", "at most 3 decimals"});
  expect_error(base + "purchase_price = \"100\"\npue = \"0.5\"\n", {"pue"});
  expect_error(base + "purchase_price = \"100\"\nspot_floor = \"cheap\"\n", {"spot_floor", "marginal"});
  expect_error(base + "purchase_price = \"100\"\npower = 7\n", {"unknown key", "power_watts"});
  expect_error(base + "purchase_price = \"100\"\nreserved_floor = \"low\"\n", {"reserved_floor", "none"});
  expect_error("[market.economics.h100]\npurchase_price = \"100\"\nin_service = \"yesterday\"\n",
               {"in_service", "RFC 3339"});
  expect_error("[market]\neconomy = {}\n", {"unknown key", "economics"});
}

TEST(Config, ExecSection) {
  auto defaults = parse_config("", "test.toml");
  ASSERT_TRUE(defaults.is_ok());
  EXPECT_EQ(defaults->exec.kind, "local");
  auto slurm = parse_config(
      "[exec]\nkind = \"slurm\"\njobs_dir = \"/shared/jobs\"\nslurm_conf = \"/etc/slurm/slurm.conf\"\n"
      "partition = \"gpu\"\ngpu_memory_gib = { h100 = 80 }\n",
      "test.toml");
  ASSERT_TRUE(slurm.is_ok()) << slurm.status().to_string();
  EXPECT_EQ(slurm->exec.kind, "slurm");
  EXPECT_EQ(slurm->exec.jobs_dir, "/shared/jobs");
  EXPECT_EQ(slurm->exec.slurm_conf, "/etc/slurm/slurm.conf");
  EXPECT_EQ(slurm->exec.slurm_bin_dir, "");
  EXPECT_EQ(slurm->exec.partition, "gpu");
  EXPECT_EQ(slurm->exec.gpu_memory_gib.at("h100"), 80);
  expect_error("[exec]\nkind = \"kubernetes\"\n", {"exec.kind", "slurm"});
  expect_error("[exec]\nkind = \"slurm\"\n", {"exec.kind", "jobs_dir"});
  expect_error("[exec]\nkind = \"slurm\"\njobs_dir = \"jobs\"\n", {"exec.jobs_dir", "absolute"});
  expect_error("[exec]\ngpu_memory_gib = { h100 = 0 }\n", {"exec.gpu_memory_gib.h100"});
  expect_error("[exec]\nslurm = 1\n", {"unknown key"});
}

}  // namespace
}  // namespace headroom::config
