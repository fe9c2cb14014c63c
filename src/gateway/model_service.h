// ModelService: hosted models behind the OpenAI API, on the built-in engine.
//
// It holds one infer::Engine per deployment and turns each chat or
// completion request into engine requests (one per choice, n of them),
// answering either at once, when every choice is done, or as server-sent
// events exactly as OpenAI streams them:
//
//   data: {"id":...,"object":"chat.completion.chunk",...,"choices":[{"index":0,"delta":{"role":"assistant","content":""},...}]}
//   data: {... "delta":{"content":"Once"} ...}
//   data: {... "delta":{},"finish_reason":"stop"}
//   data: {... "choices":[],"usage":{...}}          (with stream_options.include_usage)
//   data: [DONE]
//
// Metering, exactly once: when a request's last choice ends, however it
// ended (finished, cut short by max_tokens, cancelled because the client
// left mid-stream), its input and output tokens become two usage events
// whose ids derive from the completion's id, made here from the CSPRNG (not
// the client's request id, which a client could repeat). They are recorded
// in the durable usage log before the answer completes: the JSON answer is
// sent, and a stream's usage chunk and [DONE] written, only once the usage
// is on disk. Token counts are our tokenizer's: the prompt as rendered and
// encoded, and every token the model generated.
//
// A client that leaves a stream cancels its choices in the engine at once;
// the tokens already generated are still metered.
//
// External models: called from the I/O thread the request came in on
// (Caller::io), and their usage recorded from there with
// UsageSink::record_async, so that a request crosses no thread of ours but
// the usage log's writer. The client's body goes to a replica (upstream.h) with
// the model's name there, and with stream_options.include_usage set when
// streaming, so that the upstream reports the tokens it counted; those are
// what is metered. The answer comes back with our completion id and model
// name; a stream is passed on event by event. Should a stream break off
// before the upstream's usage (the client left), the prompt is estimated at
// a token per 4 bytes and the output counted at a token per content chunk,
// as vLLM and llama.cpp send them.
//
// Budgets: a tenant whose balance and credit are spent gets 402 before
// anything runs (ledger::Wallet::admit); then the most the request may cost
// (its prompt, and max_tokens per choice, at the model's prices) is held
// (Wallet::hold_request): 402 when the tenant cannot cover it, so that
// concurrent requests cannot overspend. The usage is charged from the hold
// and the rest released once it is.
//
// Limits (rate_limiter.h): requests and tokens per minute and concurrent
// requests, per tenant and per key; a request reserves its prompt and its
// max_tokens (per choice) on admission and is corrected to what it used
// when it ends. Every answer carries OpenAI's x-ratelimit-* headers; a
// refusal is 429 with retry-after. When an engine is saturated, waiting
// requests are admitted fairly among tenants by tokens (infer::Engine).
//
// Deployments come from the config at open() and from the API at run time
// (deploy(), undeploy()); the list is read under a shared lock per request.
//
// Thread-safety: handle() is called on the server's I/O threads; engine
// callbacks run on each engine's scheduler thread; a built-in model's usage
// is recorded on the service's metering thread, an external model's from
// the I/O thread (its answer sent from the usage log's writer thread). Destroying the service stops the engines (which
// ends every request, cancelled, and meters it) and then the metering thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/money.h"
#include "common/random.h"
#include "common/status.h"
#include "common/time.h"
#include "gateway/openai_request.h"
#include "gateway/rate_limiter.h"
#include "gateway/upstream.h"
#include "infer/engine/engine.h"
#include "ledger/usage.h"
#include "ledger/rating.h"
#include "ledger/wallet.h"
#include "net/http.h"

namespace headroom::gateway {

// A model served by the built-in engine (`file`) or by external
// OpenAI-compatible servers (`upstreams`): exactly one of the two.
struct Deployment {
  std::string name;  // the API's model id
  std::string file;  // a GGUF file
  Money input_price, output_price;  // per million tokens
  infer::EngineOptions engine;
  std::vector<std::string> upstreams;  // base URLs, "http://10.0.0.5:8000/v1", one per replica
  std::string upstream_model;          // the model's name there; empty: `name`
  std::string upstream_api_key;        // sent as a bearer token; may be empty
  UpstreamOptions upstream;
};

struct ModelInfo {
  std::string id;
  std::int64_t created = 0;  // unix seconds: when this server loaded it
  std::string owned_by;
  std::size_t context_tokens = 0;
  Money input_price, output_price;  // per million tokens
};

// Who is calling, as the router authenticated them.
struct Caller {
  std::string tenant_id;
  std::string key_id;
  std::string request_id;  // the HTTP request's, for logs
  // The I/O thread's io_context the request came in on (net::HttpRequest::io):
  // an external model is called from it. Null outside a server.
  boost::asio::io_context* io = nullptr;
};

struct ModelServiceOptions {
  ledger::UsageSink* usage = nullptr;  // required
  ledger::Wallet* wallet = nullptr;    // null: no budget checks
  // The catalog, read at each request's start. null: the deployments' own prices.
  const ledger::PriceSource* prices = nullptr;
  const Clock* clock = nullptr;        // required
  Random* random = nullptr;            // required: completion ids and unseeded sampling
  std::string owned_by = "headroom";
  RateLimits tenant_limits;  // per tenant, across its keys
  RateLimits key_limits;     // per key
  // Tokens a choice without max_tokens reserves against tokens per minute
  // (at most what its context leaves); corrected when it ends.
  std::int64_t default_reserved_tokens = 1024;
  // A request's hold expires on its own after this, should it never be released.
  std::int64_t hold_timeout_ms = 30 * 60 * 1000;
};

class ModelService {
 public:
  // Opens every deployment's engine. invalid_argument naming the deployment
  // and what is wrong with its file or options.
  static Result<std::unique_ptr<ModelService>> open(std::vector<Deployment> deployments, ModelServiceOptions options);
  ~ModelService();

  std::vector<ModelInfo> models() const;
  std::optional<ModelInfo> find(std::string_view model) const;

  // Deployments at run time (POST /v1/deployments): opens the model (its
  // file, or its upstreams) and routes to it. already_exists when the name is
  // deployed; invalid_argument naming what is wrong with the file or options.
  // `commit`, when given, runs once the model is open and before it is
  // routed to (to record and price it); its failure undoes the deployment.
  Status deploy(Deployment deployment, const std::function<Status()>& commit = {});
  // Stops routing to the model at once, then ends its requests under way,
  // each metered: a built-in model's are cancelled, and the engine freed,
  // before this returns; an external model's run to their end after it (on
  // the server's I/O threads, which this may be running on). not_found when
  // no model has the name.
  Status undeploy(std::string_view name);
  // The deployments, as declared (the upstream's key left out), by name.
  std::vector<Deployment> deployments() const;
  std::optional<Deployment> deployment(std::string_view name) const;

  // Runs a chat or completion request: fills `response` with a stream, a
  // deferred answer, or an OpenAI error.
  void handle(const Caller& caller, CompletionRequest request, net::HttpResponse& response);

 private:
  struct Model;
  struct Call;
  class EventStream;
  struct Forwarding;
  struct MeterJob {
    std::vector<ledger::UsageEvent> events;
    std::function<void(const Status&)> done;
  };

  ModelService() = default;
  std::shared_ptr<Model> model_named(std::string_view name) const;
  Result<std::shared_ptr<Model>> open_model(Deployment d) const;
  static void stop_model(Model& model);
  // Admits a request reserving its prompt and max_tokens per choice: the
  // limits, then the hold; a new call, or null with the refusal written.
  std::shared_ptr<Call> admit(const std::shared_ptr<Model>& model, const Caller& caller, const CompletionRequest& request,
                              std::int64_t prompt_tokens, std::int64_t max_tokens, net::HttpResponse& response);
  // A model's price per million input or output tokens at `at`.
  // unavailable when the catalog has no price in force for it.
  Result<Money> token_price(const ModelInfo& model, std::string_view variant, Timestamp at) const;
  // Checks the model is priced, then holds the request's most in the wallet
  // (ok without one); and the hold's release.
  Status hold(const Caller& caller, const std::string& request_id, const ModelInfo& model, std::int64_t input_tokens,
              std::int64_t output_tokens);
  void release(const std::string& request_id);
  void meter(MeterJob job);
  void run_metering();
  void call_finished(const std::shared_ptr<Call>& call);
  std::vector<ledger::UsageEvent> usage_events(const Call& call, std::int64_t input_tokens,
                                               std::int64_t output_tokens) const;
  void handle_upstream(const std::shared_ptr<Model>& model, const Caller& caller, CompletionRequest request,
                       net::HttpResponse& response);
  void forward(const std::shared_ptr<Forwarding>& forwarding);
  static void pass_on_event(Call& call, std::string_view data);
  void upstream_finished(const std::shared_ptr<Call>& call);
  struct UpstreamAnswer {
    std::string stream_tail;    // a stream's last events, [DONE] included
    net::HttpResponse response;  // or a whole answer
  };
  static UpstreamAnswer upstream_answer(const Call& call, std::int64_t prompt, std::int64_t completion,
                                        boost::json::object answer, const Status& metered);

  ModelServiceOptions options_;
  // The models routed to, by deployment order. Each is shared with the
  // requests it serves, so an undeployed model lives until they end.
  mutable std::shared_mutex models_mutex_;
  std::vector<std::shared_ptr<Model>> models_;
  std::unique_ptr<RateLimiter> limiter_;

  std::mutex meter_mutex_;
  std::condition_variable meter_wake_;
  std::deque<MeterJob> meter_jobs_;
  bool meter_stopping_ = false;
  std::size_t records_in_flight_ = 0;     // under meter_mutex_: external models' record_async calls
  std::condition_variable records_done_;  // records_in_flight_ reached 0
  std::thread meter_thread_;
};

// The error response, in OpenAI's shape.
void write_api_error(net::HttpResponse& response, const ApiError& error);

}  // namespace headroom::gateway
