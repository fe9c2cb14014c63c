#include "cli/model_commands.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "cli/cli_test_util.h"
#include "net/sse_reader.h"

namespace headroom::cli {
namespace {

using test::CliTest;
using test::RunResult;

class ModelCommandsTest : public CliTest {};

TEST(SseReader, SplitsDataLinesAcrossAnyPieces) {
  const std::string stream = "data: {\"a\":1}\n\n: a comment\r\ndata:{\"b\":2}\r\n\r\ndata: [DONE]\n\n";
  for (std::size_t piece : {1u, 2u, 7u, 1000u}) {
    net::SseReader reader;
    std::vector<std::string> got;
    for (std::size_t at = 0; at < stream.size(); at += piece) {
      reader.feed(std::string_view(stream).substr(at, piece), [&](std::string_view d) { got.emplace_back(d); });
    }
    EXPECT_EQ(got, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}", "[DONE]"})) << piece;
  }
}

TEST_F(ModelCommandsTest, ListShowsEachModel) {
  server_.answer(200, R"({"object":"list","data":[{"id":"stories260K","object":"model","created":1,"owned_by":"headroom"}]})");
  const RunResult r = run({"models", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("stories260K  headroom"), std::string::npos) << r.out;
  EXPECT_EQ(server_.requests.back().target, "/v1/models");
}

TEST_F(ModelCommandsTest, DeploymentsCreateSendsTheDeclaredFields) {
  server_.answer(201, R"({"name":"tiny","origin":"api","source":"upstreams","input_price":"0.05","output_price":"0.10"})");
  const RunResult r = run({"deployments", "create", "tiny", "--upstream", "http://10.0.0.5:8000/v1", "--upstream",
                           "http://10.0.0.6:8000/v1", "--upstream-model", "meta/llama", "--input-price", "0.05",
                           "--output-price", "0.10", "--upstream-workers", "8"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("tiny"), std::string::npos) << r.out;
  const auto& sent = server_.requests.back();
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.target, "/v1/deployments");
  EXPECT_EQ(boost::json::parse(sent.body),
            boost::json::parse(R"({"name":"tiny","input_price":"0.05","output_price":"0.10","upstreams":)"
                               R"(["http://10.0.0.5:8000/v1","http://10.0.0.6:8000/v1"],"upstream_model":"meta/llama",)"
                               R"("upstream_workers":8})"));
}

TEST_F(ModelCommandsTest, DeploymentsCreateNeedsOneSource) {
  const std::size_t before = server_.requests.size();
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"deployments", "create", "tiny", "--input-price", "1", "--output-price", "1"},
        std::vector<std::string>{"deployments", "create", "tiny", "--file", "a.gguf", "--upstream", "http://h/v1",
                                 "--input-price", "1", "--output-price", "1"}}) {
    const RunResult r = run(args);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("either --file"), std::string::npos) << r.err;
  }
  EXPECT_EQ(server_.requests.size(), before);
}

TEST_F(ModelCommandsTest, DeploymentsDeleteSaysWhatWentAway) {
  server_.answer(200, R"({"name":"tiny","object":"deployment","deleted":true})");
  const RunResult r = run({"deployments", "delete", "tiny"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server_.requests.back().method, "DELETE");
  EXPECT_EQ(server_.requests.back().target, "/v1/deployments/tiny");
  EXPECT_NE(r.out.find("tiny"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("true"), std::string::npos) << r.out;
}

TEST_F(ModelCommandsTest, ChatStreamsTheAnswerThenTheUsage) {
  server_.answer(200,
                 "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
                 "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Once upon\"}}]}\n\n"
                 "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" a time\"}}]}\n\n"
                 "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
                 "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8}}\n\n"
                 "data: [DONE]\n\n",
                 {{"content-type", "text/event-stream"}});
  const RunResult r = run({"chat", "stories260K", "Tell me", "--max-tokens", "3", "--temperature", "0"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Once upon a time\n");
  EXPECT_NE(r.err.find("tokens: 5 prompt, 3 completion"), std::string::npos) << r.err;
  const auto& sent = server_.requests.back();
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.target, "/v1/chat/completions");
  const boost::json::value body = boost::json::parse(sent.body);
  EXPECT_EQ(body.at("model"), "stories260K");
  EXPECT_EQ(body.at("stream"), true);
  EXPECT_EQ(body.at("max_tokens"), 3);
  EXPECT_EQ(body.at("messages").at(0).at("content"), "Tell me");
}

TEST_F(ModelCommandsTest, ChatReportsErrors) {
  server_.answer(404, R"({"error":{"message":"The model 'x' does not exist","type":"invalid_request_error","param":"model","code":"model_not_found"}})");
  RunResult r = run({"chat", "x", "hi"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("The model 'x' does not exist"), std::string::npos) << r.err;
  // An error inside the stream (the usage could not be recorded, say).
  server_.answer(200, "data: {\"error\":{\"message\":\"usage not recorded\"}}\n\ndata: [DONE]\n\n");
  r = run({"chat", "x", "hi"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("error: usage not recorded"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace headroom::cli
