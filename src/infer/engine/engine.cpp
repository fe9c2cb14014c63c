#include "infer/engine/engine.h"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

#include "common/check.h"
#include "infer/tokenizer/detokenizer.h"
#include "infer/tokenizer/gguf_vocabulary.h"

namespace headroom::infer {

struct Engine::Sequence {
  Sequence(GenerationRequest request, const SamplingParams& params, std::uint64_t seed, KvPool& pool,
           const Tokenizer& tokenizer)
      : tokens(std::move(request.prompt)),
        prompt_tokens(tokens.size()),
        on_token(std::move(request.on_token)),
        on_finish(std::move(request.on_finish)),
        ignore_eos(request.ignore_eos),
        tenant(std::move(request.tenant)),
        kv(pool),
        sampler(params, seed),
        stop(params),
        detokenizer(tokenizer) {}

  RequestId id = 0;
  std::vector<TokenId> tokens;  // the prompt, then each generated token
  std::size_t prompt_tokens;
  std::function<bool(const GeneratedToken&)> on_token;
  std::function<void(const GenerationResult&)> on_finish;
  bool ignore_eos;
  std::string tenant;
  bool preempted = false;  // goes before every other waiting sequence
  // Positions whose keys and values are in the cache. The tokens past it
  // are the next step's: a prompt's unread part, or the one token sampled
  // last (its keys are computed when the step after it samples).
  std::size_t computed = 0;
  bool running = false;         // in running_, else waiting (or not yet taken from the inbox)
  bool done = false;            // on_finish called; removed from the queues at the end of the step
  std::uint64_t sliced_in = 0;  // the last step that ran some of its tokens (steps count from 1)
  KvSequence kv;
  Sampler sampler;
  StopMatcher stop;
  Detokenizer detokenizer;

  std::span<const TokenId> generated() const { return std::span(tokens).subspan(prompt_tokens); }
};

namespace {

// The tokens that end a turn besides eos, as chat models write them: a
// model tuned for chat ends its answer with one of these, not with eos.
constexpr std::string_view kEndOfTurnTokens[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                                 "<|endoftext|>"};

}  // namespace

Result<std::unique_ptr<Engine>> Engine::open(const std::string& model_path, EngineOptions options) {
  if (options.max_running == 0 || options.max_step_tokens < options.max_running ||
      options.max_step_tokens > kMaxBatchTokens) {
    return Status::invalid_argument("engine: max_step_tokens (" + std::to_string(options.max_step_tokens) +
                                    ") must be in [max_running (" + std::to_string(options.max_running) + "), " +
                                    std::to_string(kMaxBatchTokens) + "], and max_running at least 1");
  }
  if (options.max_waiting == 0) return Status::invalid_argument("engine: max_waiting must be at least 1");
  if (options.threads == 0) options.threads = std::max(1u, std::thread::hardware_concurrency());
  if (options.threads > kMaxPoolThreads) {
    return Status::invalid_argument("engine: threads must be at most " + std::to_string(kMaxPoolThreads));
  }

  auto engine = std::unique_ptr<Engine>(new Engine());
  HR_ASSIGN_OR_RETURN(engine->file_, GgufFile::open(model_path));
  HR_ASSIGN_OR_RETURN(engine->model_, LlamaModel::load(*engine->file_, options.model));
  HR_ASSIGN_OR_RETURN(Vocabulary vocabulary, vocabulary_from_gguf(*engine->file_));
  HR_ASSIGN_OR_RETURN(Tokenizer tokenizer, Tokenizer::create(std::move(vocabulary)));
  engine->tokenizer_ = std::make_unique<Tokenizer>(std::move(tokenizer));
  const LlamaConfig& config = engine->model_->config();

  const std::size_t page_bytes = KvPool::page_bytes(config);
  const std::size_t pages = options.kv_cache_bytes / page_bytes;
  if (pages == 0) {
    return Status::invalid_argument("engine: kv_cache_bytes " + std::to_string(options.kv_cache_bytes) +
                                    " holds no page of the model's KV cache (" + std::to_string(page_bytes) +
                                    " bytes: " + std::to_string(kKvPageTokens) + " positions)");
  }
  std::size_t context = options.context_tokens == 0 ? config.context_length : options.context_tokens;
  context = std::min({context, config.context_length, kMaxContextTokens, pages * kKvPageTokens});
  if (context < 2) return Status::invalid_argument("engine: a sequence's context must hold at least 2 positions");
  engine->context_tokens_ = context;

  const Tokenizer& t = *engine->tokenizer_;
  if (std::optional<TokenId> eos = t.eos()) engine->end_tokens_.push_back(*eos);
  for (std::string_view text : kEndOfTurnTokens) {
    std::optional<TokenId> id = t.find(text);
    if (id.has_value() && t.token_type(*id) == TokenType::kControl &&
        std::find(engine->end_tokens_.begin(), engine->end_tokens_.end(), *id) == engine->end_tokens_.end()) {
      engine->end_tokens_.push_back(*id);
    }
  }

  engine->options_ = options;
  engine->pool_ = std::make_unique<ThreadPool>(ThreadPoolOptions{.threads = options.threads});
  if (engine->pool_->threads() > 1 && engine->model_->step_weight_bytes() <= options.small_model_bytes) {
    engine->groups_.resize(engine->pool_->threads());
  }
  HR_ASSIGN_OR_RETURN(engine->kv_pool_, KvPool::create(config, pages));
  engine->kv_pages_free_ = pages;
  engine->logits_.resize(options.max_running * config.vocab);
  engine->slices_.reserve(options.max_running);
  engine->sliced_.reserve(options.max_running);
  engine->thread_ = std::thread([e = engine.get()] { e->run(); });
  return engine;
}

Engine::~Engine() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

Result<RequestId> Engine::submit(GenerationRequest request) {
  const std::size_t vocab = model_->config().vocab;
  if (request.prompt.empty()) return Status::invalid_argument("the prompt has no tokens");
  for (TokenId token : request.prompt) {
    if (token < 0 || static_cast<std::size_t>(token) >= vocab) {
      return Status::invalid_argument("prompt token " + std::to_string(token) + " is outside the vocabulary of " +
                                      std::to_string(vocab));
    }
  }
  HR_RETURN_IF_ERROR(validate(request.sampling));
  if (request.prompt.size() >= context_tokens_) {
    return Status::invalid_argument("the prompt is " + std::to_string(request.prompt.size()) +
                                    " tokens; the model's context holds " + std::to_string(context_tokens_) +
                                    ", which leaves no room to generate");
  }
  SamplingParams params = request.sampling;
  const auto room = static_cast<std::int32_t>(
      std::min<std::size_t>(context_tokens_ - request.prompt.size(), std::numeric_limits<std::int32_t>::max()));
  params.max_tokens = std::min(params.max_tokens.value_or(room), room);
  const std::uint64_t seed = params.seed.value_or(request.seed);
  auto sequence = std::make_unique<Sequence>(std::move(request), params, seed, *kv_pool_, *tokenizer_);

  std::lock_guard lock(mutex_);
  if (queued_ >= options_.max_waiting) {
    return Status::unavailable("the engine has " + std::to_string(queued_) +
                               " requests waiting, its most: try again later");
  }
  sequence->id = next_id_++;
  const RequestId id = sequence->id;
  inbox_.push_back(std::move(sequence));
  ++queued_;
  wake_.notify_one();
  return id;
}

void Engine::cancel(RequestId id) {
  {
    std::lock_guard lock(mutex_);
    cancels_.push_back(id);
  }
  wake_.notify_one();
}

EngineStats Engine::stats() const {
  EngineStats stats;
  {
    std::lock_guard lock(mutex_);
    stats.waiting = queued_;
  }
  stats.running = running_count_.load(std::memory_order_relaxed);
  stats.kv_pages = kv_pool_->pages();
  stats.kv_pages_free = kv_pages_free_.load(std::memory_order_relaxed);
  stats.steps = steps_.load(std::memory_order_relaxed);
  stats.prompt_tokens_computed = prompt_tokens_computed_.load(std::memory_order_relaxed);
  stats.tokens_generated = tokens_generated_.load(std::memory_order_relaxed);
  stats.preemptions = preemptions_.load(std::memory_order_relaxed);
  return stats;
}

void Engine::run() {
  std::vector<RequestId> cancels;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      // Waiting requests alone are always work: with nothing running the
      // whole cache is free, and every accepted prompt fits it.
      wake_.wait(lock, [&] {
        return stopping_ || !inbox_.empty() || !cancels_.empty() || !running_.empty() || !waiting_.empty();
      });
      if (stopping_) break;
      while (!inbox_.empty()) {
        arrive(*inbox_.front());
        waiting_.push_back(std::move(inbox_.front()));
        inbox_.pop_front();
      }
      cancels.swap(cancels_);
    }
    if (!cancels.empty()) {
      cancel_requested(cancels);
      cancels.clear();
    }
    if (schedule()) step();
    std::erase_if(running_, [](const std::unique_ptr<Sequence>& s) { return s->done; });
    kv_pages_free_.store(kv_pool_->free_pages(), std::memory_order_relaxed);
  }

  // Stopping: every request still here ends as cancelled.
  {
    std::lock_guard lock(mutex_);
    while (!inbox_.empty()) {
      arrive(*inbox_.front());
      waiting_.push_back(std::move(inbox_.front()));
      inbox_.pop_front();
    }
  }
  GenerationResult cancelled;
  cancelled.cancelled = true;
  for (auto& sequence : running_) finish(*sequence, cancelled);
  for (auto& sequence : waiting_) finish(*sequence, cancelled);
  running_.clear();
  waiting_.clear();
}

void Engine::cancel_requested(std::span<const RequestId> ids) {
  const std::unordered_set<RequestId> wanted(ids.begin(), ids.end());
  GenerationResult cancelled;
  cancelled.cancelled = true;
  for (auto& sequence : running_) {
    if (wanted.contains(sequence->id)) finish(*sequence, cancelled);
  }
  std::erase_if(running_, [](const std::unique_ptr<Sequence>& s) { return s->done; });
  for (auto& sequence : waiting_) {
    if (wanted.contains(sequence->id)) finish(*sequence, cancelled);
  }
  std::erase_if(waiting_, [](const std::unique_ptr<Sequence>& s) { return s->done; });
}

void Engine::arrive(const Sequence& sequence) {
  TenantShare& share = shares_[sequence.tenant];
  if (share.sequences++ == 0) {
    // Level with the least served of the tenants here: no credit for the
    // time away, no debt from long ago.
    std::uint64_t least = UINT64_MAX;
    for (const auto& [tenant, other] : shares_) {
      if (other.sequences > 0 && &other != &share) least = std::min(least, other.tokens);
    }
    share.tokens = least == UINT64_MAX ? 0 : least;
  }
}

std::size_t Engine::next_to_admit() const {
  std::size_t best = 0;
  std::uint64_t best_tokens = UINT64_MAX;
  for (std::size_t i = 0; i < waiting_.size(); ++i) {
    const Sequence& s = *waiting_[i];
    if (s.preempted) return i;  // preempted ones wait at the front
    const std::uint64_t tokens = shares_.at(s.tenant).tokens;
    if (tokens < best_tokens) {  // strictly: the oldest of a tenant wins ties
      best = i;
      best_tokens = tokens;
    }
  }
  return best;
}

void Engine::preempt(std::size_t index) {
  Sequence& sequence = *running_[index];
  sequence.preempted = true;
  sequence.kv.clear();
  sequence.computed = 0;
  sequence.running = false;
  running_count_.fetch_sub(1, std::memory_order_relaxed);
  waiting_.push_front(std::move(running_[index]));
  running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(index));
  preemptions_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  ++queued_;
}

bool Engine::schedule() {
  slices_.clear();
  sliced_.clear();
  std::size_t budget = options_.max_step_tokens;
  const std::size_t vocab = model_->config().vocab;
  const std::uint64_t step = ++schedules_;
  auto add = [&](Sequence& sequence, std::size_t n) {
    const std::size_t end = sequence.computed + n;
    std::span<float> logits;
    // Logits only where the step reaches the last token known: the next
    // one is sampled from them.
    if (end == sequence.tokens.size()) logits = std::span(logits_).subspan(sliced_.size() * vocab, vocab);
    slices_.push_back(
        {&sequence.kv, std::span(sequence.tokens).subspan(sequence.computed, n), sequence.computed, logits});
    sliced_.push_back(&sequence);
    sequence.sliced_in = step;
    budget -= n;
  };

  // 1. The next token of every generating sequence, oldest first. One short
  // of a page, the newest sequences give theirs back.
  bool preempted = false;
  for (std::size_t i = 0; i < running_.size() && budget > 0; ++i) {
    Sequence& sequence = *running_[i];
    if (sequence.tokens.size() - sequence.computed != 1) continue;
    bool fits = sequence.kv.reserve(sequence.computed + 1);
    while (!fits && running_.size() - 1 > i) {
      preempt(running_.size() - 1);
      preempted = true;
      fits = sequence.kv.reserve(sequence.computed + 1);
    }
    if (!fits) {  // the newest itself: it waits for the older ones to finish
      preempt(i);
      preempted = true;
      break;
    }
    add(sequence, 1);
  }

  // 2. Admit waiting requests, oldest first, while their whole prompt fits.
  // Not in a step that had to preempt: the room just freed is for growing.
  std::size_t admitted = 0;
  while (!preempted && budget > 0 && !waiting_.empty() && running_.size() < options_.max_running) {
    const std::size_t next = next_to_admit();
    Sequence& sequence = *waiting_[next];
    if (!sequence.kv.reserve(sequence.tokens.size())) break;
    sequence.running = true;
    sequence.preempted = false;
    running_count_.fetch_add(1, std::memory_order_relaxed);
    running_.push_back(std::move(waiting_[next]));
    waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(next));
    ++admitted;
  }
  if (admitted > 0) {
    std::lock_guard lock(mutex_);
    queued_ -= admitted;
  }

  // 3. Prompt chunks, oldest first, in what is left of the step. Their pages
  // were taken on admission.
  for (std::size_t i = 0; i < running_.size() && budget > 0; ++i) {
    Sequence& sequence = *running_[i];
    const std::size_t pending = sequence.tokens.size() - sequence.computed;
    if (pending == 0 || sequence.sliced_in == step) continue;
    const std::size_t n = std::min(pending, budget);
    CHECK(sequence.kv.capacity() >= sequence.computed + n) << "a prompt's pages are taken on admission";
    add(sequence, n);
  }
  return !slices_.empty();
}

Status Engine::forward() {
  if (groups_.empty()) return model_->forward(slices_, scratch_, pool_.get());
  // A small model: its products are not split across threads even when
  // there is one slice (for stories260K, one thread decodes a sequence
  // faster than two).
  const std::size_t groups = std::min(groups_.size(), slices_.size());
  if (groups < 2) return model_->forward(slices_, scratch_, nullptr);
  // Contiguous groups of about equal tokens, one forward() each, side by
  // side. Each slice is computed as it would be alone, so the logits are
  // the same bits either way.
  std::size_t tokens = 0;
  for (const SequenceSlice& slice : slices_) tokens += slice.tokens.size();
  std::array<std::size_t, kMaxPoolThreads + 1> bounds{};
  std::size_t group = 1, seen = 0;
  for (std::size_t k = 0; k < slices_.size() && group < groups; ++k) {
    seen += slices_[k].tokens.size();
    const std::size_t left = slices_.size() - (k + 1);
    if (seen * groups >= tokens * group || left == groups - group) bounds[group++] = k + 1;
  }
  bounds[group] = slices_.size();
  const std::span<const SequenceSlice> all(slices_);
  pool_->parallel_for(group, [&](std::size_t begin, std::size_t end) {
    for (std::size_t g = begin; g < end; ++g) {
      groups_[g].status =
          model_->forward(all.subspan(bounds[g], bounds[g + 1] - bounds[g]), groups_[g].scratch, nullptr);
    }
  });
  for (std::size_t g = 0; g < group; ++g) {
    if (!groups_[g].status.is_ok()) return groups_[g].status;
  }
  return Status::ok();
}

void Engine::step() {
  if (Status status = forward(); !status.is_ok()) {
    // Every slice was checked on submit: this is a bug, but one request's,
    // not the server's.
    GenerationResult failed;
    failed.error = Status::internal("the model failed a step: " + status.message());
    for (Sequence* sequence : sliced_) finish(*sequence, failed);
    return;
  }
  steps_.fetch_add(1, std::memory_order_relaxed);
  for (std::size_t k = 0; k < slices_.size(); ++k) {
    Sequence& sequence = *sliced_[k];
    const std::size_t n = slices_[k].tokens.size();
    if (sequence.computed < sequence.prompt_tokens) {
      prompt_tokens_computed_.fetch_add(std::min(n, sequence.prompt_tokens - sequence.computed),
                                        std::memory_order_relaxed);
    }
    sequence.computed += n;
    shares_[sequence.tenant].tokens += n;
    if (slices_[k].logits.empty()) continue;  // mid-prompt

    const Sample sample = sequence.sampler.sample(slices_[k].logits, sequence.generated());
    sequence.tokens.push_back(sample.token);
    tokens_generated_.fetch_add(1, std::memory_order_relaxed);
    GenerationResult result;
    if (!sequence.ignore_eos && std::find(end_tokens_.begin(), end_tokens_.end(), sample.token) != end_tokens_.end()) {
      // An unfinished character held by the detokenizer is dropped: the
      // model ended mid-character, and what it meant is unknowable.
      result.finish = FinishReason::kStop;
      result.text = sequence.stop.end_of_sequence().text;
      finish(sequence, result);
      continue;
    }
    const std::string piece = sequence.detokenizer.push(sample.token);
    const StopMatcher::Step released = sequence.stop.push(piece);
    bool wanted = true;
    if (sequence.on_token) {
      wanted = sequence.on_token(GeneratedToken{sample.token, released.text, sample.logprob, sample.top_logprobs});
    }
    if (released.finish != FinishReason::kNone) {
      result.finish = released.finish;
      std::string tail;
      if (released.finish == FinishReason::kLength) tail = sequence.detokenizer.finish();
      result.text = tail;
      finish(sequence, result);
    } else if (!wanted) {
      result.cancelled = true;
      finish(sequence, result);
    }
  }
}

void Engine::finish(Sequence& sequence, GenerationResult result) {
  // The stats first: a caller woken by on_finish sees the request gone.
  sequence.kv.clear();
  if (auto share = shares_.find(sequence.tenant); share != shares_.end() && --share->second.sequences == 0) {
    shares_.erase(share);  // gone idle: it starts level again when it returns
  }
  kv_pages_free_.store(kv_pool_->free_pages(), std::memory_order_relaxed);
  if (sequence.running) {
    running_count_.fetch_sub(1, std::memory_order_relaxed);
  } else {
    std::lock_guard lock(mutex_);
    --queued_;
  }
  sequence.done = true;
  result.prompt_tokens = sequence.prompt_tokens;
  result.completion_tokens = sequence.tokens.size() - sequence.prompt_tokens;
  if (sequence.on_finish) sequence.on_finish(result);
}

}  // namespace headroom::infer
