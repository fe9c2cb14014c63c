#include "cli/generate_command.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>

#include "infer/gguf/random_llama.h"

namespace headroom::cli {
namespace {

class GenerateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    infer::RandomLlamaOptions model;
    model.vocab_size = 400;
    model.n_layers = 2;
    model.context_length = 64;
    // A file per test and process: ctest runs the tests of this binary in parallel.
    path_ = ::testing::TempDir() + "/generate_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".gguf";
    ASSERT_TRUE(infer::write_random_llama(model, path_).is_ok());
  }
  void TearDown() override { std::filesystem::remove(path_); }
  std::string path_;
};

TEST_F(GenerateTest, SameSeedSameText) {
  GenerateOptions options{.model_path = path_, .prompt = "hello there", .max_tokens = 20, .temperature = 0.8f,
                          .seed = 5, .threads = 2};
  std::ostringstream first, second;
  auto a = generate(options, first);
  ASSERT_TRUE(a.is_ok()) << a.status().message();
  auto b = generate(options, second);
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(first.str(), second.str());
  EXPECT_GE(a->prompt_tokens, 2u);  // bos and the text
  EXPECT_GE(a->generated_tokens, 1u);
  EXPECT_LE(a->generated_tokens, 20u);
}

TEST_F(GenerateTest, StopsAtTheContext) {
  GenerateOptions options{.model_path = path_, .prompt = "hi", .max_tokens = 1000, .temperature = 0.0f};
  std::ostringstream out;
  auto stats = generate(options, out);
  ASSERT_TRUE(stats.is_ok()) << stats.status().message();
  EXPECT_LE(stats->prompt_tokens + stats->generated_tokens, 64u);
}

TEST_F(GenerateTest, RejectsBadOptionsAndFiles) {
  std::ostringstream out;
  EXPECT_FALSE(validate({.model_path = path_, .prompt = "x", .temperature = 3.0f}).is_ok());
  EXPECT_FALSE(validate({.model_path = path_, .prompt = "x", .max_tokens = 0}).is_ok());
  EXPECT_FALSE(generate({.model_path = path_ + ".missing", .prompt = "x"}, out).is_ok());
  EXPECT_FALSE(generate({.model_path = path_, .prompt = std::string(200, 'z')}, out).is_ok());  // past the context
}

}  // namespace
}  // namespace headroom::cli
