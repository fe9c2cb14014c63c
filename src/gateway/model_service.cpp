#include "gateway/model_service.h"

#include <boost/json/array.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <utility>

#include "common/check.h"
#include "common/ids.h"
#include "common/limits.h"
#include "common/text.h"
#include "infer/sampling/chat_template.h"
#include "ledger/ledger_limits.h"
#include "net/sse_reader.h"

namespace headroom::gateway {
namespace json = boost::json;

struct ModelService::Model {
  ModelInfo info;
  Deployment deployment;
  // Held shared while a request uses the engine or the upstreams, and
  // exclusively by undeploy() to free them: after that both are null.
  std::shared_mutex serving;
  std::unique_ptr<infer::Engine> engine;      // a built-in model
  std::shared_ptr<Upstream> upstream;         // or an external one (shared with its requests in flight)
  infer::ChatTemplate chat_template = infer::ChatTemplate::recognise("");
  infer::SpecialTokens special;  // bos left empty: encode() adds the BOS token itself
};

// One request: its choices, and what is owed to its client.
struct ModelService::Call {
  struct Choice {
    infer::RequestId engine_id = 0;
    std::string text;
    json::array logprobs;  // chat: the "content" entries; completions: see completion_logprobs()
    std::string finish_reason;
    std::size_t completion_tokens = 0;
    bool started = false;  // a stream's first chunk (the role) is sent
    std::size_t text_offset = 0;  // bytes of text streamed so far, for legacy logprobs
    bool done = false;
  };

  ModelService* service = nullptr;
  std::shared_ptr<Model> model;
  CompletionRequest request;
  Caller caller;
  std::string id;  // the completion's, and so the usage events'
  std::int64_t created = 0;
  Timestamp started;
  std::size_t prompt_tokens = 0;

  std::mutex mutex;
  std::vector<Choice> choices;
  std::size_t remaining = 0;  // choices not done
  Status error;               // the first failure of a choice
  // A stream's bytes not yet taken by the server, and whether they end it.
  std::string pending;
  bool ended = false;
  std::weak_ptr<EventStream> stream;
  std::shared_ptr<net::DeferredResponse> deferred;  // a whole answer
  std::atomic<bool> client_gone{false};
  std::unique_ptr<RateLimiter::Ticket> ticket;
  RateState rate;

  // An external model's answer, as it is read.
  struct Upstreamed {
    int status = 0;         // 0: no replica answered
    Status failure;         // why none did
    std::string body;       // a whole answer, or an error's body
    net::SseReader events;  // a stream's
    json::value usage;      // the upstream's last usage object
    std::int64_t content_chunks = 0;
    std::int64_t estimated_prompt = 0;
  } upstream;
};

// An external model's request on its way through the replicas.
struct ModelService::Forwarding {
  std::shared_ptr<Call> call;
  std::shared_ptr<Upstream> upstream;  // kept while in flight, the model undeployed or not
  boost::asio::io_context* io = nullptr;  // the client's I/O thread, where the calls run
  std::string target;  // "/chat/completions"
  std::string body;    // for each replica tried
  std::int64_t reserved = 0;
  std::vector<Upstream::Replica*> replicas;  // in the order to try them
  std::size_t next = 0;
};

// The server's side of a stream: takes what the call has written.
class ModelService::EventStream final : public net::BodyStream {
 public:
  explicit EventStream(std::shared_ptr<Call> call) : call_(std::move(call)) {}
  // The server lets go of the stream when it ends or the client leaves:
  // whatever still runs is cancelled (ended choices ignore it).
  ~EventStream() override {
    call_->client_gone = true;
    std::vector<infer::RequestId> ids;
    {
      std::lock_guard lock(call_->mutex);
      for (const Call::Choice& c : call_->choices) {
        if (!c.done) ids.push_back(c.engine_id);
      }
    }
    // Not waited for: this may run on the engine's own thread (the last
    // reference dropped in a callback) while undeploy() frees the engine,
    // which cancels everything anyway. The token callback, seeing
    // client_gone, cancels too.
    Model& model = *call_->model;
    std::shared_lock serving(model.serving, std::try_to_lock);
    if (serving.owns_lock() && model.engine) {
      for (infer::RequestId id : ids) model.engine->cancel(id);
    }
  }

  Next next(std::string& out) override {
    std::lock_guard lock(call_->mutex);
    out.append(call_->pending);
    call_->pending.clear();
    return call_->ended ? Next::kEnd : Next::kWait;
  }

 private:
  std::shared_ptr<Call> call_;
};

namespace {

json::array byte_array(std::string_view s) {
  json::array bytes;
  for (unsigned char c : s) bytes.emplace_back(static_cast<int>(c));
  return bytes;
}

json::object usage_json(std::size_t prompt, std::size_t completion) {
  return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

// OpenAI's x-ratelimit-* headers, and retry-after on a refusal.
void add_rate_headers(net::HttpResponse& response, const RateState& state, bool refused) {
  auto add = [&](const char* name, std::string value) { response.headers.emplace_back(name, std::move(value)); };
  if (state.limit_requests >= 0) {
    add("x-ratelimit-limit-requests", std::to_string(state.limit_requests));
    add("x-ratelimit-remaining-requests", std::to_string(state.remaining_requests));
    add("x-ratelimit-reset-requests", format_reset(state.reset_requests_s));
  }
  if (state.limit_tokens >= 0) {
    add("x-ratelimit-limit-tokens", std::to_string(state.limit_tokens));
    add("x-ratelimit-remaining-tokens", std::to_string(state.remaining_tokens));
    add("x-ratelimit-reset-tokens", format_reset(state.reset_tokens_s));
  }
  if (refused && state.retry_after_s > 0) {
    add("retry-after", std::to_string(static_cast<std::int64_t>(std::ceil(state.retry_after_s))));
  }
}

// The legacy completions API's logprobs, from the chat API's entries:
// tokens, token_logprobs, top_logprobs (token -> logprob) and each token's
// text_offset, counted from `offset`.
json::object completion_logprobs(const json::array& entries, std::size_t offset) {
  json::array tokens, token_logprobs, top_logprobs, text_offset;
  for (const json::value& entry : entries) {
    const json::object& e = entry.as_object();
    tokens.push_back(e.at("token"));
    token_logprobs.push_back(e.at("logprob"));
    json::object top;
    for (const json::value& t : e.at("top_logprobs").as_array()) {
      top[t.as_object().at("token").as_string()] = t.as_object().at("logprob");
    }
    top_logprobs.push_back(std::move(top));
    text_offset.push_back(offset);
    offset += e.at("token").as_string().size();
  }
  return {{"tokens", std::move(tokens)},
          {"token_logprobs", std::move(token_logprobs)},
          {"top_logprobs", std::move(top_logprobs)},
          {"text_offset", std::move(text_offset)}};
}

void append_event(std::string& out, const json::value& v) {
  out += "data: ";
  out += json::serialize(v);
  out += "\n\n";
}

}  // namespace

void write_api_error(net::HttpResponse& response, const ApiError& error) {
  response.status = error.status;
  response.content_type = "application/json";
  response.body = error_body(error);
  response.stream.reset();
}

Result<std::unique_ptr<ModelService>> ModelService::open(std::vector<Deployment> deployments,
                                                         ModelServiceOptions options) {
  CHECK(options.usage != nullptr && options.clock != nullptr && options.random != nullptr);
  auto service = std::unique_ptr<ModelService>(new ModelService());
  service->options_ = options;
  for (Deployment& d : deployments) {
    if (service->model_named(d.name)) return Status::invalid_argument("model " + d.name + " is deployed twice");
    HR_ASSIGN_OR_RETURN(std::shared_ptr<Model> model, service->open_model(std::move(d)));
    service->models_.push_back(std::move(model));
  }
  service->limiter_ = std::make_unique<RateLimiter>(options.tenant_limits, options.key_limits, *options.clock);
  service->meter_thread_ = std::thread([s = service.get()] { s->run_metering(); });
  return service;
}

Result<std::shared_ptr<ModelService::Model>> ModelService::open_model(Deployment d) const {
  auto model = std::make_shared<Model>();
  if (!d.upstreams.empty()) {
    Result<std::shared_ptr<Upstream>> upstream = Upstream::create(d.upstreams, d.upstream_api_key, d.upstream);
    if (!upstream.is_ok()) return Status::invalid_argument("model " + d.name + ": " + upstream.status().message());
    model->upstream = std::move(*upstream);
    if (d.upstream_model.empty()) d.upstream_model = d.name;
    model->info = {d.name, options_.clock->now().unix_seconds(), options_.owned_by, 0, d.input_price, d.output_price};
    spdlog::info("model {}: {} replica(s) of {} at {}", d.name, d.upstreams.size(), d.upstream_model,
                 d.upstreams.front());
    model->deployment = std::move(d);
    return model;
  }
  Result<std::unique_ptr<infer::Engine>> engine = infer::Engine::open(d.file, d.engine);
  if (!engine.is_ok()) return Status::invalid_argument("model " + d.name + ": " + engine.status().message());
  model->engine = std::move(*engine);
  const infer::Tokenizer& tokenizer = model->engine->tokenizer();
  Result<std::string_view> chat_template = model->engine->file().get_string("tokenizer.chat_template");
  model->chat_template = infer::ChatTemplate::recognise(chat_template.is_ok() ? *chat_template : "");
  if (std::optional<infer::TokenId> eos = tokenizer.eos()) {
    model->special.eos = tokenizer.token_to_piece(*eos, infer::RenderSpecial::kYes);
  }
  model->info = {d.name, options_.clock->now().unix_seconds(), options_.owned_by, model->engine->context_tokens(),
                 d.input_price, d.output_price};
  spdlog::info("model {}: {} ({} context tokens, chat template {})", d.name, d.file, model->info.context_tokens,
               infer::chat_family_name(model->chat_template.family()));
  model->deployment = std::move(d);
  return model;
}

// Frees a model's engine, ending its requests (each metered), or lets go of
// its upstreams, whose requests in flight run to their end.
void ModelService::stop_model(Model& model) {
  std::unique_lock serving(model.serving);
  model.engine.reset();
  if (model.upstream) model.upstream->stop();
  model.upstream.reset();
}

ModelService::~ModelService() {
  // The engines and upstreams first: each ends its requests, which are metered.
  std::vector<std::shared_ptr<Model>> models;
  {
    std::unique_lock lock(models_mutex_);
    models = models_;
  }
  for (const auto& model : models) stop_model(*model);
  {
    std::unique_lock lock(meter_mutex_);
    meter_stopping_ = true;
    // External models' usage being synced: its answers use this service.
    records_done_.wait(lock, [&] { return records_in_flight_ == 0; });
  }
  meter_wake_.notify_one();
  if (meter_thread_.joinable()) meter_thread_.join();
}

std::shared_ptr<ModelService::Model> ModelService::model_named(std::string_view name) const {
  std::shared_lock lock(models_mutex_);
  for (const auto& m : models_) {
    if (m->info.id == name) return m;
  }
  return nullptr;
}

std::vector<ModelInfo> ModelService::models() const {
  std::shared_lock lock(models_mutex_);
  std::vector<ModelInfo> out;
  out.reserve(models_.size());
  for (const auto& m : models_) out.push_back(m->info);
  return out;
}

std::optional<ModelInfo> ModelService::find(std::string_view model) const {
  std::shared_ptr<Model> m = model_named(model);
  if (!m) return std::nullopt;
  return m->info;
}

namespace {

Deployment shown(Deployment d) {
  d.upstream_api_key.clear();  // a secret: never shown
  return d;
}

}  // namespace

std::optional<Deployment> ModelService::deployment(std::string_view name) const {
  std::shared_ptr<Model> m = model_named(name);
  if (!m) return std::nullopt;
  return shown(m->deployment);
}

std::vector<Deployment> ModelService::deployments() const {
  std::vector<Deployment> out;
  {
    std::shared_lock lock(models_mutex_);
    for (const auto& m : models_) out.push_back(shown(m->deployment));
  }
  std::sort(out.begin(), out.end(), [](const Deployment& a, const Deployment& b) { return a.name < b.name; });
  return out;
}

Status ModelService::deploy(Deployment deployment, const std::function<Status()>& commit) {
  if (model_named(deployment.name)) {
    return Status::already_exists("a model named \"" + deployment.name + "\" is already deployed");
  }
  HR_ASSIGN_OR_RETURN(std::shared_ptr<Model> model, open_model(std::move(deployment)));
  if (commit) {
    if (Status committed = commit(); !committed.is_ok()) {
      stop_model(*model);
      return committed;
    }
  }
  {
    std::unique_lock lock(models_mutex_);
    const bool taken = std::any_of(models_.begin(), models_.end(),
                                   [&](const auto& m) { return m->info.id == model->info.id; });
    if (!taken) {
      models_.push_back(model);
      return Status::ok();
    }
  }
  stop_model(*model);  // another deploy() of the name won: this one never served
  return Status::already_exists("a model named \"" + model->info.id + "\" is already deployed");
}

Status ModelService::undeploy(std::string_view name) {
  std::shared_ptr<Model> model;
  {
    std::unique_lock lock(models_mutex_);
    auto it = std::find_if(models_.begin(), models_.end(), [&](const auto& m) { return m->info.id == name; });
    if (it == models_.end()) return Status::not_found("no model named \"" + std::string(name) + "\" is deployed");
    model = std::move(*it);
    models_.erase(it);
  }
  spdlog::info("model {}: undeployed", model->info.id);
  stop_model(*model);
  return Status::ok();
}

void ModelService::handle(const Caller& caller, CompletionRequest request, net::HttpResponse& response) {
  const std::shared_ptr<Model> model = model_named(request.model);
  // Held while this request starts; undeploy() waits for it, then frees.
  std::shared_lock<std::shared_mutex> serving;
  if (model) serving = std::shared_lock(model->serving);
  if (!model || (!model->engine && !model->upstream)) {  // none, or undeployed just now
    write_api_error(response, {404, "invalid_request_error",
                               "The model '" + request.model + "' does not exist or you do not have access to it.",
                               "model", "model_not_found"});
    return;
  }
  if (options_.wallet != nullptr) {
    if (Status status = options_.wallet->admit(caller.tenant_id); !status.is_ok()) {
      write_api_error(response, api_error(status));
      return;
    }
  }

  if (model->upstream) {
    handle_upstream(model, caller, std::move(request), response);
    return;
  }

  // The prompt, as the model reads it.
  const infer::Tokenizer& tokenizer = model->engine->tokenizer();
  std::string chat_text;
  if (request.endpoint == Endpoint::kChat) {
    Result<std::string> text =
        model->chat_template.render(request.messages, infer::GenerationPrompt::kAdd, model->special);
    if (!text.is_ok()) {
      write_api_error(response, ApiError::invalid("messages", text.status().message()));
      return;
    }
    chat_text = std::move(*text);
  }
  // A chat's template writes the model's special tokens as text: they are
  // parsed; a completion's prompt is the client's text only.
  Result<std::vector<infer::TokenId>> prompt =
      request.endpoint == Endpoint::kChat
          ? tokenizer.encode(chat_text, infer::AddSpecial::kYes, infer::ParseSpecial::kYes)
          : tokenizer.encode(request.prompt, infer::AddSpecial::kYes, infer::ParseSpecial::kNo);
  if (!prompt.is_ok()) {
    write_api_error(response, ApiError::invalid(request.endpoint == Endpoint::kChat ? "messages" : "prompt",
                                                prompt.status().message()));
    return;
  }
  if (prompt->empty()) {
    write_api_error(response, ApiError::invalid("prompt", "the prompt has no tokens"));
    return;
  }
  const std::size_t context = model->engine->context_tokens();
  if (prompt->size() >= context) {
    ApiError error = ApiError::invalid(
        request.endpoint == Endpoint::kChat ? "messages" : "prompt",
        "This model's maximum context length is " + std::to_string(context) + " tokens. However, your " +
            (request.endpoint == Endpoint::kChat ? "messages" : "prompt") + " resulted in " +
            std::to_string(prompt->size()) + " tokens.");
    error.code = "context_length_exceeded";
    write_api_error(response, error);
    return;
  }

  // Limits: the prompt and the most each choice may generate.
  const std::int64_t room = static_cast<std::int64_t>(context - prompt->size());
  const std::int64_t per_choice = request.sampling.max_tokens.has_value()
                                      ? std::min<std::int64_t>(*request.sampling.max_tokens, room)
                                      : std::min(options_.default_reserved_tokens, room);
  auto call = admit(model, caller, request, static_cast<std::int64_t>(prompt->size()), per_choice, response);
  if (!call) return;
  call->prompt_tokens = prompt->size();
  call->choices.resize(static_cast<std::size_t>(request.n));
  call->remaining = call->choices.size();
  call->request = std::move(request);
  const CompletionRequest& r = call->request;

  std::shared_ptr<EventStream> stream;
  if (r.stream) {
    stream = std::make_shared<EventStream>(call);
    call->stream = stream;
  } else {
    call->deferred = response.defer();
    call->deferred->wait_ms = limits::kCompletionWaitMs;
  }

  const bool chat = r.endpoint == Endpoint::kChat;
  for (std::size_t i = 0; i < call->choices.size(); ++i) {
    infer::GenerationRequest g;
    g.prompt = *prompt;
    g.sampling = r.sampling;
    if (r.sampling.seed.has_value()) g.sampling.seed = *r.sampling.seed + i;  // n choices, n draws
    g.seed = options_.random->next_u64();
    g.tenant = caller.tenant_id;  // the engine shares its turns among tenants by tokens
    g.on_token = [call, i, chat, &tokenizer](const infer::GeneratedToken& token) {
      std::lock_guard lock(call->mutex);
      Call::Choice& choice = call->choices[i];
      ++choice.completion_tokens;
      json::value logprob_entry;
      if (call->request.sampling.logprobs) {
        const std::string piece(tokenizer.token_to_piece(token.token));
        json::array top;
        for (const infer::TokenLogprob& t : token.top_logprobs) {
          const std::string top_piece(tokenizer.token_to_piece(t.token));
          top.push_back(json::object{{"token", to_valid_utf8(top_piece)},
                                     {"logprob", t.logprob},
                                     {"bytes", byte_array(top_piece)}});
        }
        logprob_entry = json::object{{"token", to_valid_utf8(piece)},
                                     {"logprob", token.logprob},
                                     {"bytes", byte_array(piece)},
                                     {"top_logprobs", std::move(top)}};
      }
      if (!call->request.stream) {
        choice.text += token.text;
        if (!logprob_entry.is_null()) choice.logprobs.push_back(std::move(logprob_entry));
        return true;
      }
      if (token.text.empty() && logprob_entry.is_null()) return !call->client_gone;
      json::object c{{"index", i}};
      if (chat) {
        json::object delta;
        if (!choice.started) delta["role"] = "assistant";
        delta["content"] = token.text;
        c["delta"] = std::move(delta);
        c["logprobs"] = logprob_entry.is_null() ? json::value(nullptr)
                                                : json::value(json::object{{"content", json::array{logprob_entry}}});
      } else {
        c["text"] = token.text;
        c["logprobs"] = logprob_entry.is_null() ? json::value(nullptr)
                                                : json::value(completion_logprobs(json::array{logprob_entry},
                                                                                  choice.text_offset));
      }
      choice.text_offset += token.text.size();
      choice.started = true;
      c["finish_reason"] = nullptr;
      json::object chunk{{"id", call->id},
                         {"object", chat ? "chat.completion.chunk" : "text_completion"},
                         {"created", call->created},
                         {"model", call->request.model},
                         {"choices", json::array{std::move(c)}}};
      if (call->request.include_usage) chunk["usage"] = nullptr;
      append_event(call->pending, chunk);
      if (auto s = call->stream.lock()) s->wake();
      return !call->client_gone;
    };
    g.on_finish = [call, i, chat](const infer::GenerationResult& result) {
      bool last = false;
      {
        std::lock_guard lock(call->mutex);
        Call::Choice& choice = call->choices[i];
        choice.done = true;
        choice.completion_tokens = result.completion_tokens;
        choice.text += result.text;
        if (!result.error.is_ok() && call->error.is_ok()) call->error = result.error;
        // A cancelled choice (its client left) reports "stop": nobody reads it.
        choice.finish_reason = result.finish == infer::FinishReason::kLength ? "length" : "stop";
        if (call->request.stream && !call->client_gone) {
          json::object c{{"index", i}, {"logprobs", nullptr}, {"finish_reason", choice.finish_reason}};
          if (chat) {
            json::object delta;
            if (!choice.started) delta["role"] = "assistant";
            if (!result.text.empty()) delta["content"] = result.text;
            c["delta"] = std::move(delta);
          } else {
            c["text"] = result.text;
          }
          json::object chunk{{"id", call->id},
                             {"object", chat ? "chat.completion.chunk" : "text_completion"},
                             {"created", call->created},
                             {"model", call->request.model},
                             {"choices", json::array{std::move(c)}}};
          if (call->request.include_usage) chunk["usage"] = nullptr;
          append_event(call->pending, chunk);
        }
        last = --call->remaining == 0;
      }
      if (auto s = call->stream.lock()) s->wake();
      if (last) call->service->call_finished(call);
    };
    Result<infer::RequestId> submitted = model->engine->submit(std::move(g));
    if (!submitted.is_ok()) {
      if (i == 0) {  // nothing runs: answer now
        const ApiError error = api_error(submitted.status());
        call->ticket->settle(0);
        release(call->id);
        if (call->deferred) {
          net::HttpResponse failed;
          write_api_error(failed, error);
          add_rate_headers(failed, call->rate, false);
          call->deferred->complete(std::move(failed));
        } else {
          write_api_error(response, error);
          add_rate_headers(response, call->rate, false);
        }
        // The unsent stream's destructor takes `serving` itself: let go first.
        serving.unlock();
        stream.reset();
        return;
      }
      // Some choices run: they end now, are metered, and the answer is the error.
      bool last = false;
      {
        std::lock_guard lock(call->mutex);
        if (call->error.is_ok()) call->error = submitted.status();
        for (std::size_t k = i; k < call->choices.size(); ++k) call->choices[k].done = true;
        call->remaining -= call->choices.size() - i;
        last = call->remaining == 0;
        for (std::size_t k = 0; k < i; ++k) model->engine->cancel(call->choices[k].engine_id);
      }
      if (last) call_finished(call);
      break;
    }
    std::lock_guard lock(call->mutex);
    call->choices[i].engine_id = *submitted;
  }
  if (stream) {
    response.status = 200;
    response.content_type = "text/event-stream";
    response.headers.emplace_back("cache-control", "no-cache");
    add_rate_headers(response, call->rate, false);
    response.stream = std::move(stream);
  }
}

// A request's two usage events, input and output tokens, their ids derived
// from its completion id (so that they are recorded once however often
// they are sent).
std::vector<ledger::UsageEvent> ModelService::usage_events(const Call& call, std::int64_t input_tokens,
                                                           std::int64_t output_tokens) const {
  std::vector<ledger::UsageEvent> events;
  const Timestamp now = options_.clock->now();
  for (bool input : {true, false}) {
    ledger::UsageEvent e;
    e.id = call.id + (input ? ":input" : ":output");
    e.tenant_id = call.caller.tenant_id;
    e.product = ledger::Product::kTokens;
    e.item = call.model->info.id;
    e.variant = input ? "input" : "output";
    e.quantity = std::max<std::int64_t>(0, input ? input_tokens : output_tokens);
    // Checked on admission (hold()); versions are never taken away.
    const Result<Money> price = token_price(call.model->info, e.variant, call.started);
    e.unit_price = price.is_ok() ? *price : Money();
    e.start = call.started;
    e.end = now;
    e.source_id = call.id;
    e.key_id = call.caller.key_id;
    events.push_back(std::move(e));
  }
  return events;
}

void ModelService::call_finished(const std::shared_ptr<Call>& call) {
  // Every choice is done: nothing else touches the choices now.
  std::size_t completion = 0;
  for (const Call::Choice& c : call->choices) completion += c.completion_tokens;
  // The limits count the work done (the prompt is computed once per
  // choice); the bill is what the answer's usage says, the prompt once, as
  // OpenAI counts it.
  call->ticket->settle(static_cast<std::int64_t>(call->prompt_tokens * call->choices.size() + completion));
  MeterJob job;
  job.events = usage_events(*call, static_cast<std::int64_t>(call->prompt_tokens), static_cast<std::int64_t>(completion));
  job.done = [call, completion](const Status& metered) {
    const CompletionRequest& r = call->request;
    const bool chat = r.endpoint == Endpoint::kChat;
    // The concurrency slot and the hold are free before the client hears the end.
    call->ticket.reset();
    call->service->release(call->id);
    Status failure = call->error;
    if (failure.is_ok() && !metered.is_ok()) {
      failure = Status::unavailable("the usage of this request could not be recorded: " + metered.message());
    }
    if (r.stream) {
      {
        std::lock_guard lock(call->mutex);
        if (!failure.is_ok()) {
          const ApiError e = api_error(failure);
          call->pending += "data: " + error_body(e) + "\n\n";
        } else if (r.include_usage) {
          append_event(call->pending, json::object{{"id", call->id},
                                                   {"object", chat ? "chat.completion.chunk" : "text_completion"},
                                                   {"created", call->created},
                                                   {"model", r.model},
                                                   {"choices", json::array()},
                                                   {"usage", usage_json(call->prompt_tokens, completion)}});
        }
        call->pending += "data: [DONE]\n\n";
        call->ended = true;
      }
      if (auto s = call->stream.lock()) s->wake();
      return;
    }
    net::HttpResponse response;
    if (!failure.is_ok()) {
      write_api_error(response, api_error(failure));
    } else {
      json::array choices;
      for (std::size_t i = 0; i < call->choices.size(); ++i) {
        Call::Choice& c = call->choices[i];
        json::object choice{{"index", i}, {"finish_reason", c.finish_reason}};
        if (chat) {
          choice["message"] = json::object{{"role", "assistant"}, {"content", c.text}};
          choice["logprobs"] = r.sampling.logprobs ? json::value(json::object{{"content", std::move(c.logprobs)}})
                                                   : json::value(nullptr);
        } else {
          choice["text"] = c.text;
          choice["logprobs"] = r.sampling.logprobs ? json::value(completion_logprobs(c.logprobs, 0))
                                                   : json::value(nullptr);
        }
        choices.push_back(std::move(choice));
      }
      response.status = 200;
      response.content_type = "application/json";
      response.body = json::serialize(json::object{{"id", call->id},
                                                   {"object", chat ? "chat.completion" : "text_completion"},
                                                   {"created", call->created},
                                                   {"model", r.model},
                                                   {"choices", std::move(choices)},
                                                   {"usage", usage_json(call->prompt_tokens, completion)}});
    }
    add_rate_headers(response, call->rate, false);
    call->deferred->complete(std::move(response));
  };
  meter(std::move(job));
}

void ModelService::handle_upstream(const std::shared_ptr<Model>& model, const Caller& caller,
                                   CompletionRequest request, net::HttpResponse& response) {
  // No tokenizer for an external model: the prompt is estimated, at a token
  // per 4 bytes, for the limits (and corrected by the upstream's count).
  std::size_t bytes = request.prompt.size();
  for (const infer::ChatMessage& m : request.messages) bytes += m.content.size();
  const std::int64_t estimated_prompt = static_cast<std::int64_t>(bytes / 4 + 1);
  const std::int64_t per_choice = request.sampling.max_tokens.value_or(options_.default_reserved_tokens);
  const std::int64_t reserved = request.n * (estimated_prompt + per_choice);
  if (caller.io == nullptr) {  // a programmer's error: only the server's I/O threads call upstreams
    write_api_error(response, api_error(Status::internal("model " + request.model +
                                                         " is external, and this request came without an I/O thread")));
    return;
  }
  auto call = admit(model, caller, request, estimated_prompt, per_choice, response);
  if (!call) return;
  call->upstream.estimated_prompt = estimated_prompt * request.n;

  // The client's body, for the model's name there, asking for the usage.
  json::object body = std::move(request.body);
  body["model"] = model->deployment.upstream_model;
  if (request.stream) {
    json::object stream_options;
    if (const json::value* given = body.if_contains("stream_options"); given != nullptr && given->is_object()) {
      stream_options = given->as_object();
    }
    stream_options["include_usage"] = true;
    body["stream_options"] = std::move(stream_options);
  }
  request.body = {};
  call->request = std::move(request);

  std::shared_ptr<EventStream> stream;
  if (call->request.stream) {
    stream = std::make_shared<EventStream>(call);
    call->stream = stream;
    response.status = 200;
    response.content_type = "text/event-stream";
    response.headers.emplace_back("cache-control", "no-cache");
    add_rate_headers(response, call->rate, false);
  } else {
    call->deferred = response.defer();
    call->deferred->wait_ms = limits::kCompletionWaitMs;
  }
  // On this I/O thread: the upstream's answer comes back here, to the
  // client's connection, with no thread switch.
  auto forwarding = std::make_shared<Forwarding>();
  forwarding->call = call;
  forwarding->upstream = model->upstream;
  forwarding->io = caller.io;
  forwarding->target = call->request.endpoint == Endpoint::kChat ? "/chat/completions" : "/completions";
  forwarding->body = json::serialize(body);
  forwarding->reserved = reserved;
  forwarding->upstream->enter([this, forwarding](Upstream::Turn turn) {
    if (turn == Upstream::Turn::kServerStopping) {  // never sent: nothing used, nothing to try
      forwarding->call->upstream.failure = Status::unavailable("the server stopped before the request was sent");
      forwarding->upstream->leave(Upstream::Turn::kServerStopping);
      upstream_finished(forwarding->call);
      return;
    }
    forwarding->replicas = forwarding->upstream->order();
    forward(forwarding);
  });
  if (stream) response.stream = std::move(stream);
}

// Sends the request to the next replica, or, once one has answered or none
// is left, finishes it.
void ModelService::forward(const std::shared_ptr<Forwarding>& f) {
  const std::shared_ptr<Call>& call = f->call;
  Call::Upstreamed& u = call->upstream;
  if (u.status != 0 || f->next == f->replicas.size()) {
    f->upstream->leave();
    upstream_finished(call);
    return;
  }
  Upstream::Replica* replica = f->replicas[f->next++];
  replica->outstanding += f->reserved;
  constexpr std::size_t kMaxBodyBytes = 64 << 20;
  net::AsyncHttpCall c;
  c.target = f->target;
  c.body = f->body;  // kept for the next replica
  c.on_head = [call](const net::HttpClientResponse& head) { call->upstream.status = head.status; };
  c.on_chunk = [call](std::string_view chunk) {
    Call::Upstreamed& up = call->upstream;
    if (up.status != 200 || !call->request.stream) {
      if (up.body.size() + chunk.size() > kMaxBodyBytes) return false;
      up.body.append(chunk);
      return true;
    }
    up.events.feed(chunk, [&](std::string_view data) { pass_on_event(*call, data); });
    if (auto s = call->stream.lock()) s->wake();
    return !call->client_gone;
  };
  c.on_done = [this, f, replica](const Status& status) {
    replica->outstanding -= f->reserved;
    Call::Upstreamed& up = f->call->upstream;
    if (up.status == 0) {  // not answered: never seen there, so tried on the next
      up.failure = status;
      replica->healthy = false;  // the health check brings it back
      spdlog::warn("upstream {} for {}: {}", replica->base_url, f->call->request.model, status.message());
    }
    forward(f);
  };
  // The server is stopping with this request in flight: nothing more can run
  // on its I/O thread, so no other replica is tried; what it used is metered.
  c.on_abandoned = [this, f, replica] {
    replica->outstanding -= f->reserved;
    f->upstream->leave(Upstream::Turn::kServerStopping);
    Call::Upstreamed& up = f->call->upstream;
    if (up.status == 0) up.failure = Status::unavailable("the server stopped with the request in flight");
    upstream_finished(f->call);
  };
  f->upstream->post(*f->io, *replica, std::move(c));
}

// A stream's event from the upstream, passed on with our id and model name;
// its usage is kept for the end, and [DONE] is ours to send.
void ModelService::pass_on_event(Call& call, std::string_view data) {
  Call::Upstreamed& u = call.upstream;
  if (data == "[DONE]") return;  // ours comes once the usage is recorded
  boost::system::error_code ec;
  unsigned char buffer[4096];  // the event's values, freed at once (see upstream_finished)
  json::monotonic_resource arena(buffer, sizeof buffer);
  json::value event = json::parse(data, ec, &arena);
  if (ec || !event.is_object()) return;
  json::object& o = event.as_object();
  if (const json::value* usage = o.if_contains("usage"); usage != nullptr && usage->is_object()) u.usage = *usage;
  const json::value* choices = o.if_contains("choices");
  const bool empty = choices == nullptr || !choices->is_array() || choices->as_array().empty();
  if (empty && !o.contains("error")) return;  // the usage alone: ours is sent at the end
  if (!empty) ++u.content_chunks;
  o["id"] = call.id;
  o["model"] = call.request.model;
  if (call.request.include_usage) {
    o["usage"] = nullptr;
  } else {
    o.erase("usage");
  }
  std::lock_guard lock(call.mutex);
  append_event(call.pending, event);
}

void ModelService::upstream_finished(const std::shared_ptr<Call>& call) {
  Call::Upstreamed& u = call->upstream;
  // The answer's values live in a buffer here until it is written out:
  // allocated one by one, they were a seventh of the I/O thread's mallocs.
  unsigned char buffer[8192];
  json::monotonic_resource arena(buffer, sizeof buffer);
  // The tokens: the upstream's count, else the estimates.
  json::object answer(&arena);
  if (!call->request.stream && u.status == 200) {
    boost::system::error_code ec;
    json::value parsed = json::parse(u.body, ec, &arena);
    if (!ec && parsed.is_object()) {
      answer = std::move(parsed.as_object());
      if (const json::value* usage = answer.if_contains("usage"); usage != nullptr && usage->is_object()) u.usage = *usage;
    }
  }
  auto count = [&](const char* field, std::int64_t fallback) {
    if (u.usage.is_object()) {
      if (const json::value* v = u.usage.as_object().if_contains(field); v != nullptr && v->is_int64()) {
        return v->as_int64();
      }
    }
    return u.status == 0 ? 0 : fallback;
  };
  const std::int64_t prompt = count("prompt_tokens", u.estimated_prompt);
  const std::int64_t completion = count("completion_tokens", u.content_chunks);
  call->ticket->settle(prompt + completion);

  // The answer is made now, on this I/O thread, as if the usage will be
  // recorded: the writer's thread that reports the sync then only sends it.
  auto prepared =
      std::make_shared<UpstreamAnswer>(upstream_answer(*call, prompt, completion, std::move(answer), Status::ok()));
  auto done = [this, call, prepared, prompt, completion](const Status& metered) {
    if (!metered.is_ok()) {
      spdlog::error("model usage not recorded: {}", metered.message());
      *prepared = upstream_answer(*call, prompt, completion, {}, metered);
    }
    // The concurrency slot and the hold are free before the client hears the end.
    call->ticket.reset();
    release(call->id);
    if (call->request.stream) {
      {
        std::lock_guard lock(call->mutex);
        call->pending += prepared->stream_tail;
        call->ended = true;
      }
      if (auto s = call->stream.lock()) s->wake();
      return;
    }
    call->deferred->complete(std::move(prepared->response));
  };
  {
    std::lock_guard lock(meter_mutex_);
    ++records_in_flight_;
  }
  options_.usage->record_async(usage_events(*call, prompt, completion), [this, done](const Status& metered) {
    done(metered);
    std::lock_guard lock(meter_mutex_);
    if (--records_in_flight_ == 0) records_done_.notify_all();
  });
}

// An external model's answer to its client, or a stream's last events,
// given how its usage was recorded.
ModelService::UpstreamAnswer ModelService::upstream_answer(const Call& call, std::int64_t prompt,
                                                           std::int64_t completion, json::object answer,
                                                           const Status& metered) {
  const bool chat = call.request.endpoint == Endpoint::kChat;
  const Call::Upstreamed& up = call.upstream;
  const CompletionRequest& r = call.request;
  // What went wrong, as the client is told: no replica, or the usage not recorded.
  std::optional<ApiError> failure;
  if (up.status == 0) {
    failure = ApiError{502, "server_error", "no replica of " + r.model + " could be reached: " + up.failure.message(),
                       "", "upstream_unavailable"};
  } else if (!metered.is_ok()) {
    failure = api_error(Status::unavailable("the usage of this request could not be recorded: " + metered.message()));
  }
  UpstreamAnswer out;
  if (r.stream) {
    std::string& pending = out.stream_tail;
    if (failure) {
      pending += "data: " + error_body(*failure) + "\n\n";
    } else if (up.status != 200) {
      // The upstream refused: its error, as one event (the head has
      // gone). Re-serialized, so that a body with line breaks cannot
      // split the event; a body that is not JSON is named, not passed on.
      boost::system::error_code ec;
      const json::value error = json::parse(up.body, ec);
      pending += "data: " +
                 (!ec && error.is_object()
                      ? json::serialize(error)
                      : error_body(ApiError{502, "server_error",
                                            "the upstream answered HTTP " + std::to_string(up.status) +
                                                " without an OpenAI error body",
                                            "", "upstream_error"})) +
                 "\n\n";
    } else if (r.include_usage) {
      append_event(pending,
                   json::object{{"id", call.id},
                                {"object", chat ? "chat.completion.chunk" : "text_completion"},
                                {"created", call.created},
                                {"model", r.model},
                                {"choices", json::array()},
                                {"usage", usage_json(static_cast<std::size_t>(prompt),
                                                     static_cast<std::size_t>(completion))}});
    }
    pending += "data: [DONE]\n\n";
    return out;
  }
  net::HttpResponse& response = out.response;
  if (failure) {
    write_api_error(response, *failure);
  } else if (up.status != 200 || answer.empty()) {
    // The upstream's own error, passed on with its status when it is
    // OpenAI's JSON; otherwise (or a 200 we cannot read) a 502 saying so.
    boost::system::error_code ec;
    const json::value error = json::parse(up.body, ec);
    if (up.status != 200 && !ec && error.is_object() && error.as_object().contains("error")) {
      response.status = up.status;
      response.content_type = "application/json";
      response.body = up.body;
    } else {
      write_api_error(response, {502, "server_error",
                                 "the upstream answered HTTP " + std::to_string(up.status) +
                                     (up.status == 200 ? " with a body that is not a completion"
                                                       : " without an OpenAI error body"),
                                 "", "upstream_error"});
    }
  } else {
    answer["id"] = call.id;
    answer["model"] = r.model;
    response.status = 200;
    response.content_type = "application/json";
    response.body = json::serialize(answer);
  }
  add_rate_headers(response, call.rate, false);
  return out;
}

std::shared_ptr<ModelService::Call> ModelService::admit(const std::shared_ptr<Model>& model, const Caller& caller,
                                                         const CompletionRequest& request, std::int64_t prompt_tokens,
                                                         std::int64_t max_tokens, net::HttpResponse& response) {
  const std::int64_t reserved = request.n * (prompt_tokens + max_tokens);
  RateState rate;
  Result<std::unique_ptr<RateLimiter::Ticket>> ticket = limiter_->admit(caller.tenant_id, caller.key_id, reserved, rate);
  if (!ticket.is_ok()) {
    write_api_error(response, api_error(ticket.status()));
    add_rate_headers(response, rate, /*refused=*/true);
    return nullptr;
  }
  const std::string id = make_id("cmpl", *options_.random);
  if (Status held = hold(caller, id, model->info, prompt_tokens * request.n, max_tokens * request.n); !held.is_ok()) {
    (*ticket)->settle(0);
    write_api_error(response, api_error(held));
    add_rate_headers(response, rate, /*refused=*/false);
    return nullptr;
  }
  auto call = std::make_shared<Call>();
  call->ticket = std::move(*ticket);
  call->rate = rate;
  call->service = this;
  call->model = model;
  call->caller = caller;
  call->id = id;
  call->started = options_.clock->now();
  call->created = call->started.unix_seconds();
  return call;
}

Result<Money> ModelService::token_price(const ModelInfo& model, std::string_view variant, Timestamp at) const {
  if (options_.prices == nullptr) return variant == "input" ? model.input_price : model.output_price;
  // No fallback: usage the catalog cannot price would be recorded and never charged.
  if (auto price = options_.prices->price_at(ledger::Product::kTokens, model.id, variant, at)) return *price;
  return Status::unavailable("model " + model.id + " has no " + std::string(variant) +
                             " token price in force; the operator must price it (POST /v1/prices)");
}

Status ModelService::hold(const Caller& caller, const std::string& request_id, const ModelInfo& model,
                          std::int64_t input_tokens, std::int64_t output_tokens) {
  const Timestamp now = options_.clock->now();
  HR_ASSIGN_OR_RETURN(Money input_price, token_price(model, "input", now));
  HR_ASSIGN_OR_RETURN(Money output_price, token_price(model, "output", now));
  if (options_.wallet == nullptr) return Status::ok();
  return options_.wallet->hold_request(caller.tenant_id, request_id, input_price, input_tokens, output_price,
                                       output_tokens, options_.hold_timeout_ms, now);
}

void ModelService::release(const std::string& request_id) {
  if (options_.wallet != nullptr) options_.wallet->release_request(request_id);
}

void ModelService::meter(MeterJob job) {
  {
    std::lock_guard lock(meter_mutex_);
    meter_jobs_.push_back(std::move(job));
  }
  meter_wake_.notify_one();
}

// Records usage off the engines' threads: an fsync must not stall a step.
void ModelService::run_metering() {
  std::unique_lock lock(meter_mutex_);
  for (;;) {
    meter_wake_.wait(lock, [&] { return meter_stopping_ || !meter_jobs_.empty(); });
    if (meter_jobs_.empty()) return;  // stopping, and everything recorded
    std::deque<MeterJob> jobs;
    jobs.swap(meter_jobs_);
    lock.unlock();
    // The jobs waiting together share a batch, and so a group commit.
    std::vector<ledger::UsageEvent> events;
    for (auto begin = jobs.begin(); begin != jobs.end();) {
      events.clear();
      auto end = begin;
      for (; end != jobs.end() && events.size() + end->events.size() <= limits::kUsageBatchEvents; ++end) {
        events.insert(events.end(), end->events.begin(), end->events.end());
      }
      const Status status = options_.usage->record(events);
      if (!status.is_ok()) spdlog::error("model usage not recorded ({} events): {}", events.size(), status.message());
      for (; begin != end; ++begin) begin->done(status);
    }
    lock.lock();
  }
}

}  // namespace headroom::gateway
