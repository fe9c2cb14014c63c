// Engine: the built-in engine serving many generation requests at once on
// the CPU, what the model API puts behind its routes.
//
//   auto engine = Engine::open("stories260K.gguf", {.threads = 2});
//   GenerationRequest request;
//   request.prompt = engine->tokenizer().encode(...);
//   request.sampling.max_tokens = 64;
//   request.on_token = [](const GeneratedToken& t) { send(t.text); return client_still_there(); };
//   request.on_finish = [](const GenerationResult& r) { bill(r.prompt_tokens, r.completion_tokens); };
//   Result<RequestId> id = engine->submit(std::move(request));
//
// Continuous batching: one scheduler thread runs the model a step at a time.
// Each step is one batch of at most max_step_tokens tokens across the running
// sequences: first the next token of every sequence that is generating, then
// chunks of the prompts still being read, oldest first; sequences join
// between steps as soon as the KV cache has room for their prompt, and leave
// the moment they finish. So a long prompt is read a chunk at a time beside
// the others' decoding instead of stalling them, and the weights read from
// memory per step serve every sequence in it.
//
// Memory: keys and values live in a paged cache (infer/model/kv_cache.h) of
// kv_cache_bytes. A request is admitted when the cache has room for its whole
// prompt; a generating sequence takes a page every kKvPageTokens tokens, and
// when none is free the newest running sequence gives its pages back and
// waits at the head of the queue, to be read again (from its prompt and the
// tokens it had generated) when there is room: "preemption by recompute", as
// vLLM does it. Recomputing gives the same keys and values bit for bit, so a
// preempted request still produces exactly what it would have produced alone.
//
// Fairness: when requests wait, the next admitted is the oldest of the
// tenant that has had the fewest tokens computed (prompt and generated) so
// far; a tenant that arrives, or returns after being idle, starts level with
// the least served of those waiting or running, not at zero, so it cannot
// claim back the time it was away. So one tenant's long prompts cost it its
// own turns, not the others' (fair queuing by tokens, not by requests). A
// preempted sequence goes before all of them: it was admitted already.
//
// Exactness: the model computes every row of a batch alone (see
// LlamaModel::forward), so a request's tokens and log-probabilities do not
// depend on what else runs beside it, on how its prompt was chunked, or on
// whether it was preempted; the tests hold the engine to that.
//
// Refusals, from submit(), never by dropping a request later:
// invalid_argument for an empty prompt, a token outside the vocabulary,
// sampling parameters out of range, or a prompt that does not leave room for
// one token in a sequence's context (the model's, or what the cache holds if
// that is less); unavailable when max_waiting requests already wait.
// A request may ask for more tokens than its context leaves: it ends with
// finish_reason "length" at the context's end.
//
// Callbacks run on the scheduler thread, between steps, and hold up every
// sequence while they run: they must be quick (hand the text to an I/O
// thread) and must not throw or call back into the engine except cancel().
// on_finish is called exactly once per accepted request, last, including
// when it is cancelled and when the engine is destroyed with it unfinished.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/status.h"
#include "infer/gguf/gguf_file.h"
#include "infer/kernels/thread_pool.h"
#include "infer/model/llama_model.h"
#include "infer/sampling/sampler.h"
#include "infer/sampling/sampling_params.h"
#include "infer/sampling/stop_matcher.h"
#include "infer/tokenizer/tokenizer.h"

namespace headroom::infer {

using RequestId = std::uint64_t;

struct EngineOptions {
  // Threads that run each step (the scheduler's included); 0: one per core.
  std::size_t threads = 0;
  // The paged KV cache's memory: the keys and values of every running
  // sequence together.
  std::size_t kv_cache_bytes = std::size_t{512} << 20;
  // Tokens one step runs, at most: every generating sequence's next token,
  // then prompt chunks. In [max_running, kMaxBatchTokens].
  std::size_t max_step_tokens = 256;
  // Sequences running at once, at most (the rest wait).
  std::size_t max_running = 64;
  // Requests waiting for room, at most, before submit() refuses.
  std::size_t max_waiting = 1024;
  // A sequence's most positions (prompt and generated); 0: the model's
  // context length. Clamped to the model's and to what the cache holds.
  std::size_t context_tokens = 0;
  // A model whose step reads at most this many bytes of weights (one the
  // caches hold) runs a step's sequences in groups side by side, one group
  // per thread; a larger one splits each matrix product across the
  // threads, so that its weights are read once a step. 0: always split.
  std::size_t small_model_bytes = std::size_t{4} << 20;
  LlamaModelOptions model;
};

struct GeneratedToken {
  TokenId token = 0;
  // The text this token releases: whole UTF-8 characters, with stop
  // sequences cut out (infer/sampling/stop_matcher.h). Often empty while
  // text is held back. Valid during the callback only.
  std::string_view text;
  // With sampling.logprobs: the token's log-probability and the
  // top_logprobs most likely tokens (Sampler's Sample). Valid during the
  // callback only.
  float logprob = 0.0f;
  std::span<const TokenLogprob> top_logprobs;
};

struct GenerationResult {
  // kStop (a stop sequence or the end-of-sequence token) or kLength
  // (max_tokens, or the context's end); kNone when cancelled or failed.
  FinishReason finish = FinishReason::kNone;
  bool cancelled = false;
  Status error;  // not ok when the engine failed the request
  std::size_t prompt_tokens = 0;
  // Tokens the model generated, whatever the ending (the end-of-sequence
  // token included): what the request is billed for.
  std::size_t completion_tokens = 0;
  // The text held back until the end, released now (may be empty). Valid
  // during the callback only.
  std::string_view text;
};

struct GenerationRequest {
  std::vector<TokenId> prompt;  // the model's tokens, bos included if wanted
  SamplingParams sampling;
  // The sampler's seed when sampling.seed is absent.
  std::uint64_t seed = 0;
  // Run to max_tokens even past the end-of-sequence token (benchmarks).
  bool ignore_eos = false;
  // Who the tokens are for (a tenant id): when requests wait for room, the
  // one whose tenant has had the fewest tokens run goes next. Empty is a
  // tenant like any other.
  std::string tenant;
  // Each generated token but the end-of-sequence one; return false to
  // cancel (the client has gone). May be empty.
  std::function<bool(const GeneratedToken&)> on_token;
  // Once, last. May be empty.
  std::function<void(const GenerationResult&)> on_finish;
};

struct EngineStats {
  std::size_t running = 0;
  std::size_t waiting = 0;
  std::size_t kv_pages = 0;
  std::size_t kv_pages_free = 0;
  std::uint64_t steps = 0;
  std::uint64_t prompt_tokens_computed = 0;  // recomputed ones counted again
  std::uint64_t tokens_generated = 0;
  std::uint64_t preemptions = 0;
};

class Engine {
 public:
  // Maps the GGUF file and loads the model and its tokenizer.
  // invalid_argument (or not_found) naming what is wrong with the file or
  // the options.
  static Result<std::unique_ptr<Engine>> open(const std::string& model_path, EngineOptions options = {});
  // Cancels every request still running or waiting (each gets on_finish)
  // and stops the scheduler.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; see the refusals above. Thread-safe. Generation ends
  // at the first of the model's eos, the end-of-turn tokens chat models use
  // (<|eot_id|>, <|im_end|>, ...), a stop sequence, or max_tokens.
  Result<RequestId> submit(GenerationRequest request);
  // Ends a request as soon as the scheduler sees it, before its next step:
  // on_finish with cancelled set and the tokens generated so far. An id
  // that has finished (or never was) is ignored. Thread-safe.
  void cancel(RequestId id);

  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const LlamaConfig& config() const { return model_->config(); }
  const GgufFile& file() const { return *file_; }
  // A sequence's most positions, prompt and generated together.
  std::size_t context_tokens() const { return context_tokens_; }
  EngineStats stats() const;

 private:
  struct Sequence;
  Engine() = default;
  void run();
  // Builds the next step into slices_; false when nothing can run.
  bool schedule();
  // Runs the step and samples the next token of each sequence it completes.
  void step();
  // The step's forward pass over slices_: one batch split across the pool's
  // threads, or, for a model whose weights the caches hold, the sequences
  // in groups run side by side (groups_ set), one group a thread.
  // Splitting each small matrix product across threads cost more in
  // hand-offs than it saved; reading a small model's weights once per group
  // costs little.
  Status forward();
  void preempt(std::size_t running_index);
  void finish(Sequence& sequence, GenerationResult result);
  void cancel_requested(std::span<const RequestId> ids);
  // A sequence joins the waiting queue for the first time.
  void arrive(const Sequence& sequence);
  // The waiting sequence to admit next (see Fairness).
  std::size_t next_to_admit() const;

  EngineOptions options_;
  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<KvPool> kv_pool_;
  std::size_t context_tokens_ = 0;
  std::vector<TokenId> end_tokens_;  // eos and the end-of-turn tokens the vocabulary has

  // Between submit() and cancel() callers and the scheduler.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Sequence>> inbox_;
  std::vector<RequestId> cancels_;
  std::size_t queued_ = 0;  // inbox_ and waiting_ together, for max_waiting
  RequestId next_id_ = 1;
  bool stopping_ = false;

  // The scheduler thread's own.
  std::deque<std::unique_ptr<Sequence>> waiting_;
  // Tokens computed per tenant, and how many of its sequences are here.
  struct TenantShare {
    std::uint64_t tokens = 0;
    std::size_t sequences = 0;
  };
  std::unordered_map<std::string, TenantShare> shares_;
  std::vector<std::unique_ptr<Sequence>> running_;  // in admission order
  std::vector<SequenceSlice> slices_;
  std::vector<Sequence*> sliced_;  // slices_[i]'s sequence
  std::uint64_t schedules_ = 0;    // steps planned so far
  std::vector<float> logits_;
  ForwardScratch scratch_;
  struct Group {
    ForwardScratch scratch;
    Status status;
  };
  std::vector<Group> groups_;  // one per thread, or none: see forward()

  std::atomic<std::size_t> running_count_{0};
  std::atomic<std::uint64_t> steps_{0}, prompt_tokens_computed_{0}, tokens_generated_{0}, preemptions_{0};
  std::atomic<std::size_t> kv_pages_free_{0};

  std::thread thread_;  // last: started when everything above is ready
};

}  // namespace headroom::infer
