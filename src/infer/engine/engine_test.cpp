// The engine against itself and the model: a request's tokens and
// log-probabilities are the same bits whether it runs alone or batched with
// others, chunked or whole, preempted or not; and its refusals, cancellation
// and shutdown.
#include "infer/engine/engine.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "infer/gguf/gguf_test_util.h"
#include "infer/gguf/random_llama.h"

namespace headroom::infer {
namespace {

using testing::stories_path;

// A small grouped-query model, written once per test process (ctest runs
// tests in parallel: the path holds the pid).
const std::string& random_model_path() {
  static const std::string path = [] {
    RandomLlamaOptions options;
    options.vocab_size = 300;
    options.dim = 64;
    options.hidden_dim = 96;
    options.n_layers = 2;
    options.n_heads = 4;
    options.n_kv_heads = 2;
    options.context_length = 256;
    options.weight_type = TensorType::kQ8_0;
    options.seed = 11;
    std::string p = ::testing::TempDir() + "/engine_test_" + std::to_string(getpid()) + ".gguf";
    EXPECT_TRUE(write_random_llama(options, p).is_ok());
    return p;
  }();
  return path;
}

struct Outcome {
  std::vector<TokenId> tokens;
  std::vector<float> logprobs;
  std::string text;
  GenerationResult result;
  std::string error;
};

// Submits requests and collects what each produces.
class Collector {
 public:
  // The request's callbacks are set to record into outcome `index`.
  Result<RequestId> submit(Engine& engine, GenerationRequest request, std::size_t index,
                           std::size_t stop_after_tokens = SIZE_MAX) {
    {
      std::lock_guard lock(mutex_);
      if (outcomes_.size() <= index) outcomes_.resize(index + 1);
      ++pending_;
    }
    request.on_token = [this, index, stop_after_tokens](const GeneratedToken& token) {
      std::lock_guard lock(mutex_);
      Outcome& o = outcomes_[index];
      o.tokens.push_back(token.token);
      o.logprobs.push_back(token.logprob);
      o.text += token.text;
      return o.tokens.size() < stop_after_tokens;
    };
    request.on_finish = [this, index](const GenerationResult& result) {
      std::lock_guard lock(mutex_);
      Outcome& o = outcomes_[index];
      o.result = result;
      o.text += result.text;
      o.result.text = {};
      ++finishes_[index];
      --pending_;
      done_.notify_all();
    };
    Result<RequestId> id = engine.submit(std::move(request));
    if (!id.is_ok()) {
      std::lock_guard lock(mutex_);
      --pending_;
    }
    return id;
  }

  // Waits for every accepted request to finish.
  std::vector<Outcome> wait() {
    std::unique_lock lock(mutex_);
    EXPECT_TRUE(done_.wait_for(lock, std::chrono::seconds(120), [&] { return pending_ == 0; }));
    for (const auto& [index, count] : finishes_) EXPECT_EQ(count, 1) << "request " << index << " finished twice";
    return outcomes_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  std::vector<Outcome> outcomes_;
  std::map<std::size_t, int> finishes_;
  std::size_t pending_ = 0;
};

// Varied requests: prompts of 1 to 60 tokens, greedy and seeded sampling
// with penalties, logprobs on.
std::vector<GenerationRequest> varied_requests(std::size_t n, std::size_t vocab) {
  std::vector<GenerationRequest> requests(n);
  for (std::size_t i = 0; i < n; ++i) {
    GenerationRequest& r = requests[i];
    const std::size_t prompt_length = 1 + (i * 37) % 60;
    r.prompt.push_back(1);
    for (std::size_t t = 1; t < prompt_length; ++t)
      r.prompt.push_back(static_cast<TokenId>(3 + (i * 131 + t * 17) % (vocab - 3)));
    r.sampling.max_tokens = static_cast<std::int32_t>(5 + (i * 7) % 30);
    r.sampling.logprobs = true;
    if (i % 2 == 0) {
      r.sampling.temperature = 0.0f;
    } else {
      r.sampling.temperature = 0.9f;
      r.sampling.top_p = 0.95f;
      r.sampling.frequency_penalty = 0.3f;
      r.sampling.seed = 1000 + i;
    }
    r.ignore_eos = true;  // full lengths: more steps to compare
  }
  return requests;
}

std::unique_ptr<Engine> open_engine(const std::string& path, EngineOptions options) {
  Result<std::unique_ptr<Engine>> engine = Engine::open(path, options);
  EXPECT_TRUE(engine.is_ok()) << engine.status().message();
  return engine.is_ok() ? std::move(*engine) : nullptr;
}

// Each request run alone, one after another, on an engine that batches nothing.
std::vector<Outcome> run_alone(const std::string& path, const std::vector<GenerationRequest>& requests) {
  auto engine = open_engine(path, {.threads = 1, .max_step_tokens = 512, .max_running = 1});
  std::vector<Outcome> outcomes;
  for (const GenerationRequest& request : requests) {
    Collector collector;
    EXPECT_TRUE(collector.submit(*engine, request, 0).is_ok());
    outcomes.push_back(collector.wait()[0]);
  }
  return outcomes;
}

void expect_same(const std::vector<Outcome>& got, const std::vector<Outcome>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].tokens, want[i].tokens) << "request " << i;
    EXPECT_EQ(got[i].logprobs, want[i].logprobs) << "request " << i;  // bit for bit
    EXPECT_EQ(got[i].text, want[i].text) << "request " << i;
    EXPECT_EQ(got[i].result.finish, want[i].result.finish) << "request " << i;
    EXPECT_EQ(got[i].result.completion_tokens, want[i].result.completion_tokens) << "request " << i;
  }
}

TEST(Engine, AloneMatchesTheModelsOwnLoop) {
  const std::string& path = random_model_path();
  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.is_ok());
  auto model = LlamaModel::load(**file);
  ASSERT_TRUE(model.is_ok());
  const std::vector<TokenId> prompt = {1, 40, 50, 60, 70, 80};
  constexpr int kTokens = 20;
  // Greedy by hand: the argmax of each step's logits.
  KvCache cache = (*model)->new_cache(64);
  std::vector<float> logits((*model)->config().vocab);
  ASSERT_TRUE((*model)->forward(prompt, 0, cache, logits, nullptr).is_ok());
  std::vector<TokenId> want;
  for (int i = 0; i < kTokens; ++i) {
    const auto best = static_cast<TokenId>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    want.push_back(best);
    ASSERT_TRUE((*model)->forward(best, prompt.size() + i, cache, logits, nullptr).is_ok());
  }

  auto engine = open_engine(path, {.threads = 2});
  Collector collector;
  GenerationRequest request;
  request.prompt = prompt;
  request.sampling.temperature = 0.0f;
  request.sampling.max_tokens = kTokens;
  request.ignore_eos = true;
  ASSERT_TRUE(collector.submit(*engine, request, 0).is_ok());
  const Outcome got = collector.wait()[0];
  EXPECT_EQ(got.tokens, want);
  EXPECT_EQ(got.result.finish, FinishReason::kLength);
  EXPECT_EQ(got.result.prompt_tokens, prompt.size());
  EXPECT_EQ(got.result.completion_tokens, static_cast<std::size_t>(kTokens));
  EXPECT_FALSE(got.result.cancelled);
}

TEST(Engine, BatchedEqualsUnbatched) {
  const std::string& path = random_model_path();
  const std::vector<GenerationRequest> requests = varied_requests(24, 300);
  const std::vector<Outcome> alone = run_alone(path, requests);

  // All at once, in steps of 32 tokens: prompts are read in chunks beside
  // the others' decoding, sequences join and leave between steps.
  // The model is small: by default its sequences run in groups side by
  // side; with small_model_bytes 0, each product is split across threads.
  for (std::size_t small_model_bytes : {EngineOptions{}.small_model_bytes, std::size_t{0}}) {
    SCOPED_TRACE("small_model_bytes " + std::to_string(small_model_bytes));
    auto engine = open_engine(
        path, {.threads = 2, .max_step_tokens = 32, .max_running = 8, .small_model_bytes = small_model_bytes});
    Collector collector;
    for (std::size_t i = 0; i < requests.size(); ++i) ASSERT_TRUE(collector.submit(*engine, requests[i], i).is_ok());
    expect_same(collector.wait(), alone);
    const EngineStats stats = engine->stats();
    EXPECT_EQ(stats.running, 0u);
    EXPECT_EQ(stats.waiting, 0u);
    EXPECT_EQ(stats.kv_pages_free, stats.kv_pages) << "every page is given back";
    std::size_t generated = 0;
    for (const Outcome& o : alone) generated += o.result.completion_tokens;
    EXPECT_EQ(stats.tokens_generated, generated);
  }
}

TEST(Engine, PreemptedRequestsProduceWhatTheyWouldAlone) {
  const std::string& path = random_model_path();
  const std::vector<GenerationRequest> requests = varied_requests(16, 300);
  const std::vector<Outcome> alone = run_alone(path, requests);

  // A cache of 12 pages (192 positions) for 16 requests of up to 94: the
  // generating ones run out of pages and the newest give theirs back.
  auto probe = open_engine(path, {.threads = 1});
  const std::size_t page_bytes = KvPool::page_bytes(probe->config());
  probe.reset();
  auto engine =
      open_engine(path, {.threads = 2, .kv_cache_bytes = 12 * page_bytes, .max_step_tokens = 64, .max_running = 16});
  Collector collector;
  for (std::size_t i = 0; i < requests.size(); ++i) ASSERT_TRUE(collector.submit(*engine, requests[i], i).is_ok());
  expect_same(collector.wait(), alone);
  EXPECT_GT(engine->stats().preemptions, 0u);
  EXPECT_EQ(engine->stats().kv_pages_free, 12u);
}

TEST(Engine, RefusesWhatItCannotServe) {
  auto engine = open_engine(random_model_path(), {.threads = 1, .context_tokens = 64});
  ASSERT_EQ(engine->context_tokens(), 64u);
  auto refusal = [&](GenerationRequest request) {
    Result<RequestId> id = engine->submit(std::move(request));
    EXPECT_FALSE(id.is_ok());
    return id.is_ok() ? std::string() : id.status().message();
  };
  GenerationRequest request;
  EXPECT_EQ(refusal(request), "the prompt has no tokens");
  request.prompt = {1, 300};
  EXPECT_EQ(refusal(request), "prompt token 300 is outside the vocabulary of 300");
  request.prompt.assign(64, 5);
  EXPECT_EQ(refusal(request),
            "the prompt is 64 tokens; the model's context holds 64, which leaves no room to generate");
  request.prompt = {1, 2, 3};
  request.sampling.temperature = 3.0f;
  EXPECT_NE(refusal(request).find("temperature"), std::string::npos);

  // More than max_tokens fits: generation ends at the context's end.
  Collector collector;
  GenerationRequest long_one;
  long_one.prompt.assign(60, 7);
  long_one.sampling.max_tokens = 1000;
  long_one.ignore_eos = true;
  ASSERT_TRUE(collector.submit(*engine, long_one, 0).is_ok());
  const Outcome outcome = collector.wait()[0];
  EXPECT_EQ(outcome.result.finish, FinishReason::kLength);
  EXPECT_EQ(outcome.result.completion_tokens, 4u);
}

TEST(Engine, OpenRefusesBadOptions) {
  const std::string& path = random_model_path();
  Result<std::unique_ptr<Engine>> engine = Engine::open(path, {.kv_cache_bytes = 100});
  ASSERT_FALSE(engine.is_ok());
  EXPECT_NE(engine.status().message().find("holds no page"), std::string::npos) << engine.status().message();
  engine = Engine::open(path, {.max_step_tokens = 8, .max_running = 16});
  ASSERT_FALSE(engine.is_ok());
  EXPECT_NE(engine.status().message().find("max_step_tokens"), std::string::npos);
  engine = Engine::open("/nonexistent/model.gguf");
  EXPECT_FALSE(engine.is_ok());
}

// The first request's first token blocks the scheduler until the test lets
// it go, so what the test submits meanwhile queues up deterministically.
TEST(Engine, RefusesWhenTheQueueIsFullAndCancels) {
  auto engine = open_engine(random_model_path(), {.threads = 1, .max_running = 1, .max_waiting = 3});
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> first_token;
  std::atomic<bool> blocked{false};

  Collector collector;
  GenerationRequest blocker;
  blocker.prompt = {1, 2, 3};
  blocker.sampling.max_tokens = 50;
  blocker.ignore_eos = true;
  ASSERT_TRUE(collector.submit(*engine, blocker, 0).is_ok());
  GenerationRequest gate;
  gate.prompt = {1, 9};
  gate.sampling.max_tokens = 50;
  gate.ignore_eos = true;
  gate.on_token = [&](const GeneratedToken&) {
    if (!blocked.exchange(true)) {
      first_token.set_value();
      released.wait();
    }
    return true;
  };
  std::promise<GenerationResult> gate_result;
  gate.on_finish = [&](const GenerationResult& r) { gate_result.set_value(r); };
  Result<RequestId> gate_id = engine->submit(std::move(gate));
  ASSERT_TRUE(gate_id.is_ok());
  // The blocker runs first (max_running 1); the gate runs when it ends.
  first_token.get_future().wait();
  // The scheduler is inside the gate's callback: nothing moves.
  GenerationRequest small;
  small.prompt = {1, 4};
  small.sampling.max_tokens = 3;
  ASSERT_TRUE(collector.submit(*engine, small, 1).is_ok());
  ASSERT_TRUE(collector.submit(*engine, small, 2).is_ok());
  Result<RequestId> waiting = collector.submit(*engine, small, 3);
  ASSERT_TRUE(waiting.is_ok());
  Result<RequestId> refused = engine->submit(small);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("requests waiting"), std::string::npos);

  engine->cancel(*waiting);   // still waiting: ends without running
  engine->cancel(*gate_id);   // running: ends before its next step
  engine->cancel(987654321);  // unknown: ignored
  release.set_value();
  const GenerationResult gate_end = gate_result.get_future().get();
  EXPECT_TRUE(gate_end.cancelled);
  EXPECT_EQ(gate_end.finish, FinishReason::kNone);
  EXPECT_EQ(gate_end.completion_tokens, 1u) << "the token generated before the cancel is counted";
  const std::vector<Outcome> outcomes = collector.wait();
  EXPECT_TRUE(outcomes[3].result.cancelled);
  EXPECT_EQ(outcomes[3].result.completion_tokens, 0u);
  EXPECT_EQ(outcomes[1].result.completion_tokens, 3u);
  EXPECT_EQ(outcomes[0].result.completion_tokens, 50u);
}

TEST(Engine, ACallbackReturningFalseCancels) {
  auto engine = open_engine(random_model_path(), {.threads = 1});
  Collector collector;
  GenerationRequest request;
  request.prompt = {1, 2, 3};
  request.sampling.max_tokens = 40;
  request.ignore_eos = true;
  ASSERT_TRUE(collector.submit(*engine, request, 0, /*stop_after_tokens=*/5).is_ok());
  const Outcome outcome = collector.wait()[0];
  EXPECT_TRUE(outcome.result.cancelled);
  EXPECT_EQ(outcome.result.completion_tokens, 5u);
  EXPECT_EQ(engine->stats().kv_pages_free, engine->stats().kv_pages);
}

TEST(Engine, DestroyingTheEngineFinishesEveryRequestOnce) {
  Collector collector;
  {
    auto engine = open_engine(random_model_path(), {.threads = 1, .max_running = 2});
    GenerationRequest request;
    request.prompt = {1, 2, 3};
    request.sampling.max_tokens = 200;
    request.ignore_eos = true;
    for (std::size_t i = 0; i < 10; ++i) ASSERT_TRUE(collector.submit(*engine, request, i).is_ok());
  }
  const std::vector<Outcome> outcomes = collector.wait();
  ASSERT_EQ(outcomes.size(), 10u);
  for (const Outcome& o : outcomes) {
    if (o.result.finish == FinishReason::kNone) {
      EXPECT_TRUE(o.result.cancelled);
    }
  }
}

// Two tenants, one running at a time: A queued six long prompts first, B six
// short ones after. Fair by tokens, B's all run after A's first (A has had
// 100 tokens, B none) instead of after all of A's.
TEST(Engine, WaitingTenantsAreServedFairlyByTokens) {
  auto engine = open_engine(random_model_path(), {.threads = 1, .max_running = 1});
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> gate_running;
  std::mutex mutex;
  std::vector<std::string> finished;  // tenant and index, in order

  GenerationRequest gate;
  gate.prompt = {1, 2};
  gate.sampling.max_tokens = 2;
  gate.ignore_eos = true;
  gate.tenant = "gate";
  std::atomic<bool> once{false};
  gate.on_token = [&](const GeneratedToken&) {
    if (!once.exchange(true)) {
      gate_running.set_value();
      released.wait();
    }
    return true;
  };
  ASSERT_TRUE(engine->submit(std::move(gate)).is_ok());
  gate_running.get_future().wait();

  std::atomic<int> pending{12};
  std::promise<void> all_done;
  auto submit = [&](const std::string& tenant, int index, std::size_t prompt_length) {
    GenerationRequest r;
    r.prompt.assign(prompt_length, 5);
    r.prompt[0] = 1;
    r.sampling.max_tokens = 4;
    r.ignore_eos = true;
    r.tenant = tenant;
    r.on_finish = [&, name = tenant + std::to_string(index)](const GenerationResult&) {
      {
        std::lock_guard lock(mutex);
        finished.push_back(name);
      }
      if (--pending == 0) all_done.set_value();
    };
    ASSERT_TRUE(engine->submit(std::move(r)).is_ok());
  };
  for (int i = 0; i < 6; ++i) submit("A", i, 100);
  for (int i = 0; i < 6; ++i) submit("B", i, 5);
  release.set_value();
  all_done.get_future().wait();
  const std::vector<std::string> want = {"A0", "B0", "B1", "B2", "B3", "B4", "B5", "A1", "A2", "A3", "A4", "A5"};
  EXPECT_EQ(finished, want);
}

TEST(Engine, Stories260KTellsItsStoryAndStops) {
  const std::string path = stories_path();
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " is missing: the repository ships it (models/)";
  auto engine = open_engine(path, {.threads = 2});
  Collector collector;
  GenerationRequest request;
  request.prompt = {*engine->tokenizer().bos()};
  request.sampling.temperature = 0.0f;
  request.sampling.max_tokens = 64;
  ASSERT_TRUE(collector.submit(*engine, request, 0).is_ok());
  request.sampling.stop = {" named"};
  ASSERT_TRUE(collector.submit(*engine, request, 1).is_ok());
  const std::vector<Outcome> outcomes = collector.wait();
  // The text continues the prompt (bos): SentencePiece's space before "Once" stays.
  EXPECT_EQ(outcomes[0].text.rfind(" Once upon a time, there was a little girl named Lily", 0), 0u) << outcomes[0].text;
  EXPECT_EQ(outcomes[1].text, " Once upon a time, there was a little girl");
  EXPECT_EQ(outcomes[1].result.finish, FinishReason::kStop);
}

}  // namespace
}  // namespace headroom::infer
