#include "fleet/detect.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

namespace headroom::fleet {
namespace {

// What `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits`
// prints on an HGX H100 node.
constexpr std::string_view kHgxH100 =
    "0, GPU-8f6b3c1e-1d2a-4c55-9d1e-0a1b2c3d4e50, NVIDIA H100 80GB HBM3, 81559\n"
    "1, GPU-8f6b3c1e-1d2a-4c55-9d1e-0a1b2c3d4e51, NVIDIA H100 80GB HBM3, 81559\n"
    "2, GPU-8f6b3c1e-1d2a-4c55-9d1e-0a1b2c3d4e52, NVIDIA H100 80GB HBM3, 81559\n"
    "3, GPU-8f6b3c1e-1d2a-4c55-9d1e-0a1b2c3d4e53, NVIDIA H100 80GB HBM3, 81559\n"
    "4, GPU-8f6b3c1e-1d2a-4c55-9d1e-0a1b2c3d4e54, NVIDIA H100 80GB HBM3, 81559\n"
    "5, GPU-8f6b3c1e-1d2a-4c55-9d1e-0a1b2c3d4e55, NVIDIA H100 80GB HBM3, 81559\n"
    "6, GPU-8f6b3c1e-1d2a-4c55-9d1e-0a1b2c3d4e56, NVIDIA H100 80GB HBM3, 81559\n"
    "7, GPU-8f6b3c1e-1d2a-4c55-9d1e-0a1b2c3d4e57, NVIDIA H100 80GB HBM3, 81559\n";

std::string error_of(std::string_view csv) {
  auto parsed = parse_nvidia_smi_csv(csv);
  EXPECT_FALSE(parsed.is_ok()) << "parsed: " << csv;
  if (parsed.is_ok()) return "";
  EXPECT_EQ(parsed.status().code(), ErrorCode::kInvalidArgument);
  return parsed.status().message();
}

TEST(NvidiaSmiCsv, ParsesAnHgxNode) {
  auto gpus = parse_nvidia_smi_csv(kHgxH100);
  ASSERT_TRUE(gpus.is_ok()) << gpus.status().to_string();
  ASSERT_EQ(gpus->size(), 8u);
  EXPECT_EQ((*gpus)[3].index, 3u);
  EXPECT_EQ((*gpus)[3].uuid, "GPU-8f6b3c1e-1d2a-4c55-9d1e-0a1b2c3d4e53");
  EXPECT_EQ((*gpus)[3].name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ((*gpus)[3].memory_mib, 81559);
}

TEST(NvidiaSmiCsv, ToleratesCrLfAndBlankLines) {
  auto gpus = parse_nvidia_smi_csv(
      "\r\n0, GPU-a, NVIDIA A100-SXM4-40GB, 40960\r\n\n  \n1,GPU-b,NVIDIA A100-SXM4-40GB,40960\n  ");
  ASSERT_TRUE(gpus.is_ok()) << gpus.status().to_string();
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ((*gpus)[1].uuid, "GPU-b");
  EXPECT_EQ((*gpus)[1].memory_mib, 40960);
}

TEST(NvidiaSmiCsv, UuidNotAvailableIsEmpty) {
  auto gpus = parse_nvidia_smi_csv("0, [N/A], Tesla T4, 15360\n");
  ASSERT_TRUE(gpus.is_ok()) << gpus.status().to_string();
  EXPECT_EQ((*gpus)[0].uuid, "");
}

TEST(NvidiaSmiCsv, JunkLinesNameTheLine) {
  std::string message = error_of(
      "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest "
      "NVIDIA driver is installed and running.\n");
  EXPECT_NE(message.find("nvidia-smi output line 1"), std::string::npos) << message;
  EXPECT_NE(message.find("expected 4 comma-separated fields"), std::string::npos) << message;

  message = error_of("0, GPU-a, NVIDIA H100 80GB HBM3, 81559\n<html>oops</html>\n");
  EXPECT_NE(message.find("line 2"), std::string::npos) << message;

  message = error_of("index, uuid, name, memory.total [MiB]\n0, GPU-a, NVIDIA H100 80GB HBM3, 81559\n");
  EXPECT_NE(message.find("line 1"), std::string::npos) << message;
  EXPECT_NE(message.find("index \"index\" is not a number"), std::string::npos) << message;
}

TEST(NvidiaSmiCsv, TruncatedLinesAreErrors) {
  std::string message = error_of("0, GPU-a, NVIDIA H100 80GB HBM3, 81559\n1, GPU-b\n");
  EXPECT_NE(message.find("line 2"), std::string::npos) << message;
  EXPECT_NE(message.find("got 2"), std::string::npos) << message;

  message = error_of("0, GPU-a, NVIDIA H100 80GB HBM3, \n");
  EXPECT_NE(message.find("memory.total \"\" is not a number"), std::string::npos) << message;

  // Cut inside the number, "81559" would read as 815 MiB: the missing end of
  // line gives it away.
  message = error_of("0, GPU-a, NVIDIA H100 80GB HBM3, 81559\n1, GPU-b, NVIDIA H100 80GB HBM3, 815");
  EXPECT_NE(message.find("line 2"), std::string::npos) << message;
  EXPECT_NE(message.find("is truncated"), std::string::npos) << message;
}

TEST(NvidiaSmiCsv, FieldErrors) {
  EXPECT_NE(error_of("0, GPU-a, NVIDIA H100, 81559, extra\n").find("got more"), std::string::npos);
  EXPECT_NE(error_of("-1, GPU-a, NVIDIA H100, 81559\n").find("index \"-1\""), std::string::npos);
  EXPECT_NE(error_of("72, GPU-a, NVIDIA H100, 81559\n").find("from 0 to 71"), std::string::npos);
  EXPECT_NE(error_of("0, 8f6b3c1e, NVIDIA H100, 81559\n").find("uuid \"8f6b3c1e\""), std::string::npos);
  EXPECT_NE(error_of("0, GPU-a, , 81559\n").find("name \"\""), std::string::npos);
  EXPECT_NE(error_of("0, GPU-a, NVIDIA H100, [N/A]\n").find("does not report the GPU's memory"), std::string::npos);
  EXPECT_NE(error_of("0, GPU-a, NVIDIA H100, 80 GiB\n").find("memory.total \"80 GiB\""), std::string::npos);
  EXPECT_NE(error_of("0, GPU-a, NVIDIA H100, 0\n").find("from 1 to"), std::string::npos);
  EXPECT_NE(error_of("0, GPU-a, NVIDIA H100, 99999999999\n").find("from 1 to"), std::string::npos);
  EXPECT_NE(error_of("0, GPU-a, NVIDIA\x01H100, 81559\n").find("NVIDIA\\x01H100"), std::string::npos);
}

TEST(NvidiaSmiCsv, WholeOutputErrors) {
  EXPECT_NE(error_of("").find("lists no GPUs"), std::string::npos);
  EXPECT_NE(error_of("\n\n").find("lists no GPUs"), std::string::npos);
  EXPECT_NE(error_of("0, GPU-a, NVIDIA H100, 81559\n0, GPU-b, NVIDIA H100, 81559\n").find("GPU index 0 appears twice"),
            std::string::npos);
  EXPECT_NE(
      error_of("0, GPU-a, NVIDIA H100, 81559\n1, GPU-a, NVIDIA H100, 81559\n").find("uuid \"GPU-a\" appears twice"),
      std::string::npos);
  std::string many;
  for (std::size_t i = 0; i <= limits::kGpusPerNode; ++i) many += std::to_string(i % 72) + ", [N/A], X, 1\n";
  EXPECT_NE(error_of(many).find("more than 72 GPUs"), std::string::npos);
}

TEST(GpuTypeName, FromProductNames) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"NVIDIA H100 80GB HBM3", "h100"},
      {"NVIDIA H100 PCIe", "h100"},
      {"NVIDIA H100 NVL", "h100"},
      {"NVIDIA H200", "h200"},
      {"NVIDIA GB200", "gb200"},
      {"NVIDIA B200", "b200"},
      {"NVIDIA GH200 480GB", "gh200"},
      {"NVIDIA A100-SXM4-80GB", "a100"},
      {"NVIDIA A100 80GB PCIe", "a100"},
      {"NVIDIA A10G", "a10g"},
      {"NVIDIA L40S", "l40s"},
      {"Tesla V100-SXM2-16GB", "v100"},
      {"Tesla T4", "t4"},
      {"NVIDIA GeForce RTX 4090", "rtx-4090"},
      {"NVIDIA RTX A6000", "rtx-a6000"},
      {"NVIDIA RTX 6000 Ada Generation", "rtx-6000-ada"},
      {"Quadro RTX 8000", "rtx-8000"},
      {"NVIDIA", "gpu"},
      {"", "gpu"},
      {"!!!", "gpu"},
  };
  for (const auto& [product, type] : cases) {
    EXPECT_EQ(gpu_type_from_product_name(product), type) << product;
  }
  const std::string long_name(200, 'x');
  const std::string type = gpu_type_from_product_name(long_name);
  EXPECT_TRUE(is_valid_gpu_type_name(type)) << type;
  EXPECT_TRUE(is_valid_gpu_type_name(gpu_type_from_product_name("NVIDIA " + std::string(31, 'a') + " b")));
}

TEST(NodeName, FromHostNames) {
  EXPECT_EQ(node_name_from_host_name("gpu01.iad1.example.com"), "gpu01.iad1.example.com");
  EXPECT_EQ(node_name_from_host_name("my host"), "my-host");
  EXPECT_EQ(node_name_from_host_name("-x"), "x");
  EXPECT_EQ(node_name_from_host_name(""), "local");
  EXPECT_EQ(node_name_from_host_name("---"), "local");
  EXPECT_TRUE(is_valid_fleet_name(node_name_from_host_name(std::string(300, 'h'))));
}

TEST(DetectedFleet, OneNodeOfTheDetectedType) {
  auto gpus = parse_nvidia_smi_csv(kHgxH100);
  ASSERT_TRUE(gpus.is_ok());
  auto fleet = fleet_from_detected_gpus("gpu01", *gpus);
  ASSERT_TRUE(fleet.is_ok()) << fleet.status().to_string();
  EXPECT_FALSE(fleet->is_virtual);
  EXPECT_EQ(fleet->source, "nvidia-smi");
  ASSERT_EQ(fleet->gpu_types.size(), 1u);
  EXPECT_EQ(fleet->gpu_types[0].name, "h100");
  EXPECT_EQ(fleet->gpu_types[0].display_name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(fleet->gpu_types[0].memory_mib, 81559);
  ASSERT_EQ(fleet->nodes.size(), 1u);
  const Node& node = fleet->nodes[0];
  EXPECT_EQ(node.name, "gpu01");
  EXPECT_EQ(node.nvlink_domain, "gpu01");
  EXPECT_EQ(node.region, "local");
  EXPECT_EQ(node.state, NodeState::kUp);
  ASSERT_EQ(node.gpus.size(), 8u);
  EXPECT_EQ(node.gpus[7].index, 7u);
  EXPECT_EQ(node.gpus[7].type, "h100");
  EXPECT_EQ(node.gpus[7].uuid, "GPU-8f6b3c1e-1d2a-4c55-9d1e-0a1b2c3d4e57");
  EXPECT_TRUE(validate(*fleet).is_ok());
}

TEST(DetectedFleet, MixedProductsSortedByIndex) {
  auto gpus = parse_nvidia_smi_csv(
      "1, GPU-b, NVIDIA H100 NVL, 95830\n"
      "0, GPU-a, NVIDIA H100 80GB HBM3, 81559\n"
      "2, GPU-c, NVIDIA GeForce RTX 4090, 24564\n");
  ASSERT_TRUE(gpus.is_ok()) << gpus.status().to_string();
  auto fleet = fleet_from_detected_gpus("ws", *gpus);
  ASSERT_TRUE(fleet.is_ok()) << fleet.status().to_string();
  ASSERT_EQ(fleet->gpu_types.size(), 2u);
  const GpuType* h100 = find_gpu_type(*fleet, "h100");
  ASSERT_NE(h100, nullptr);
  EXPECT_EQ(h100->memory_mib, 81559) << "the smallest of the GPUs that share a type";
  ASSERT_NE(find_gpu_type(*fleet, "rtx-4090"), nullptr);
  EXPECT_EQ(fleet->nodes[0].gpus[0].uuid, "GPU-a");
  EXPECT_EQ(fleet->nodes[0].gpus[2].type, "rtx-4090");
}

TEST(VirtualFleet, IsLabelledAndValid) {
  const FleetSpec fleet = virtual_local_fleet();
  EXPECT_TRUE(validate(fleet).is_ok()) << validate(fleet).to_string();
  EXPECT_TRUE(fleet.is_virtual);
  EXPECT_EQ(fleet.source, "virtual");
  ASSERT_EQ(fleet.nodes.size(), 1u);
  EXPECT_EQ(fleet.nodes[0].name, "local");
  EXPECT_EQ(fleet.nodes[0].gpus.size(), 8u);
  ASSERT_EQ(fleet.gpu_types.size(), 1u);
  EXPECT_EQ(fleet.gpu_types[0].name, "virtual");
  EXPECT_EQ(fleet.gpu_types[0].memory_mib, 80 * 1024);
}

// A fake nvidia-smi: a shell script in a fresh directory.
class FakeNvidiaSmi : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/headroom-detect-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::remove(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  std::string write(const std::string& body) {
    path_ = dir_ + "/nvidia-smi";
    std::ofstream(path_) << "#!/bin/sh\n" << body << "\n";
    ::chmod(path_.c_str(), 0755);
    return path_;
  }
  std::string dir_;
  std::string path_;
};

TEST_F(FakeNvidiaSmi, MissingProgramGivesTheVirtualFleet) {
  auto fleet = detect_local_fleet({.nvidia_smi = dir_ + "/no-such-nvidia-smi", .timeout_ms = 5'000, .node_name = ""});
  ASSERT_TRUE(fleet.is_ok()) << fleet.status().to_string();
  EXPECT_TRUE(fleet->is_virtual);
  EXPECT_EQ(fleet->source, "virtual");
}

TEST_F(FakeNvidiaSmi, MissingFromPathGivesTheVirtualFleet) {
  auto fleet =
      detect_local_fleet({.nvidia_smi = "headroom-no-such-program-on-path", .timeout_ms = 5'000, .node_name = ""});
  ASSERT_TRUE(fleet.is_ok()) << fleet.status().to_string();
  EXPECT_TRUE(fleet->is_virtual);
}

TEST_F(FakeNvidiaSmi, ParsesWhatItPrints) {
  // The script checks that it was asked the documented query.
  const std::string script = std::string("[ \"$1\" = \"") + std::string(kNvidiaSmiQueryArg) + "\" ] || exit 9\n" +
                             "[ \"$2\" = \"" + std::string(kNvidiaSmiFormatArg) + "\" ] || exit 9\n" + "cat <<'EOF'\n" +
                             std::string(kHgxH100) + "EOF";
  auto fleet = detect_local_fleet({.nvidia_smi = write(script), .timeout_ms = 5'000, .node_name = "gpu07"});
  ASSERT_TRUE(fleet.is_ok()) << fleet.status().to_string();
  EXPECT_FALSE(fleet->is_virtual);
  EXPECT_EQ(fleet->source, "nvidia-smi");
  EXPECT_EQ(fleet->nodes[0].name, "gpu07");
  EXPECT_EQ(fleet->nodes[0].gpus.size(), 8u);
  EXPECT_EQ(fleet->gpu_types[0].name, "h100");
}

TEST_F(FakeNvidiaSmi, UsesTheHostNameByDefault) {
  auto fleet = detect_local_fleet(
      {.nvidia_smi = write("echo '0, GPU-a, Tesla T4, 15360'"), .timeout_ms = 5'000, .node_name = ""});
  ASSERT_TRUE(fleet.is_ok()) << fleet.status().to_string();
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  EXPECT_EQ(fleet->nodes[0].name, node_name_from_host_name(host));
}

TEST_F(FakeNvidiaSmi, FailureIsAnErrorNotAVirtualFleet) {
  auto fleet = detect_local_fleet(
      {.nvidia_smi = write("echo 'No devices were found' >&2; exit 6"), .timeout_ms = 5'000, .node_name = ""});
  ASSERT_FALSE(fleet.is_ok());
  EXPECT_EQ(fleet.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(fleet.status().message().find("exit status 6"), std::string::npos) << fleet.status().message();
  EXPECT_NE(fleet.status().message().find("No devices were found"), std::string::npos) << fleet.status().message();
  EXPECT_NE(fleet.status().message().find("[fleet]"), std::string::npos) << fleet.status().message();
}

TEST_F(FakeNvidiaSmi, JunkOutputIsAParseError) {
  auto fleet =
      detect_local_fleet({.nvidia_smi = write("echo 'Failed to initialize NVML: Driver/library version mismatch'"),
                          .timeout_ms = 5'000,
                          .node_name = "n"});
  ASSERT_FALSE(fleet.is_ok());
  EXPECT_EQ(fleet.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(fleet.status().message().find("line 1"), std::string::npos) << fleet.status().message();
}

TEST_F(FakeNvidiaSmi, HangIsCutOffByTheTimeout) {
  const auto start = std::chrono::steady_clock::now();
  auto fleet = detect_local_fleet(
      {.nvidia_smi = write("echo '0, GPU-a, Tesla T4, 15360'; sleep 30"), .timeout_ms = 300, .node_name = "n"});
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(fleet.is_ok());
  EXPECT_EQ(fleet.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(fleet.status().message().find("did not answer within 300 ms"), std::string::npos)
      << fleet.status().message();
  EXPECT_LT(elapsed, std::chrono::seconds(5)) << "the sleeping child was not killed";
}

TEST_F(FakeNvidiaSmi, EndlessOutputIsCutOff) {
  auto fleet = detect_local_fleet(
      {.nvidia_smi = write("yes '0, GPU-a, Tesla T4, 15360'"), .timeout_ms = 5'000, .node_name = "n"});
  ASSERT_FALSE(fleet.is_ok());
  EXPECT_EQ(fleet.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(fleet.status().message().find("printed more than 65536 bytes"), std::string::npos)
      << fleet.status().message();
}

TEST_F(FakeNvidiaSmi, NotExecutableIsAnError) {
  const std::string path = write("exit 0");
  ::chmod(path.c_str(), 0644);
  auto fleet = detect_local_fleet({.nvidia_smi = path, .timeout_ms = 5'000, .node_name = "n"});
  ASSERT_FALSE(fleet.is_ok());
  EXPECT_EQ(fleet.status().code(), ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace headroom::fleet
