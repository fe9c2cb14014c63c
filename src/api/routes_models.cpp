// The OpenAI-compatible API: GET /v1/models, GET /v1/models/{id},
// POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings.
// Keys need the inference scope; every error, the router's included, is in
// OpenAI's shape. The work is gateway::ModelService's.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "api/json_body.h"
#include "api/router.h"
#include "api/services.h"
#include "gateway/model_service.h"
#include "gateway/openai_request.h"

namespace headroom::api {
namespace {

namespace json = boost::json;

void write_openai_error(net::HttpResponse& response, const Status& status, std::string_view /*request_id*/) {
  gateway::write_api_error(response, gateway::api_error(status));
}

json::object model_json(const gateway::ModelInfo& m) {
  return {{"id", m.id}, {"object", "model"}, {"created", m.created}, {"owned_by", m.owned_by}};
}

Status list_models(Services& s, RequestContext&, net::HttpResponse& response) {
  json::array data;
  for (const gateway::ModelInfo& m : s.models->models()) data.push_back(model_json(m));
  write_json(response, 200, json::object{{"object", "list"}, {"data", std::move(data)}});
  return Status::ok();
}

gateway::ApiError model_not_found(std::string_view model) {
  return {404, "invalid_request_error",
          "The model '" + std::string(model) + "' does not exist or you do not have access to it.", "model",
          "model_not_found"};
}

Status show_model(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  const std::optional<gateway::ModelInfo> m = s.models->find(ctx.param("id"));
  if (!m) {
    gateway::write_api_error(response, model_not_found(ctx.param("id")));
    return Status::ok();
  }
  write_json(response, 200, model_json(*m));
  return Status::ok();
}

Status complete(Services& s, RequestContext& ctx, net::HttpResponse& response, gateway::Endpoint endpoint) {
  gateway::CompletionRequest request;
  gateway::ApiError error;
  if (!gateway::parse_completion_request(endpoint, ctx.http.body, request, error)) {
    gateway::write_api_error(response, error);
    return Status::ok();
  }
  const gateway::Caller caller{ctx.caller.tenant_id(), ctx.caller.key().id, std::string(ctx.http.request_id),
                               ctx.http.io};
  s.models->handle(caller, std::move(request), response);
  return Status::ok();
}

Status chat_completions(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  return complete(s, ctx, response, gateway::Endpoint::kChat);
}

Status completions(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  return complete(s, ctx, response, gateway::Endpoint::kCompletion);
}

// No deployed model embeds yet: the model is looked up so that an unknown
// one is a 404 and a known one a clear 400.
Status embeddings(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  boost::system::error_code ec;
  const json::value body = json::parse(ctx.http.body, ec);
  const json::value* model = !ec && body.is_object() ? body.as_object().if_contains("model") : nullptr;
  if (model == nullptr || !model->is_string()) {
    gateway::write_api_error(response, gateway::ApiError::invalid("model", "model is required"));
    return Status::ok();
  }
  const std::string name(model->as_string());
  if (!s.models->find(name)) {
    gateway::write_api_error(response, model_not_found(name));
    return Status::ok();
  }
  gateway::write_api_error(response, gateway::ApiError::invalid(
                                         "model", "The model '" + name + "' does not support embeddings: it generates text"));
  return Status::ok();
}

}  // namespace

void add_model_routes(Router& router, Services& s) {
  auto bind = [&s](Status (*f)(Services&, RequestContext&, net::HttpResponse&)) {
    return [&s, f](RequestContext& ctx, net::HttpResponse& r) { return f(s, ctx, r); };
  };
  const store::ScopeSet inference = store::kScopeInference;
  router.add({"GET", "/v1/models", Access::kAuthenticated, inference, std::nullopt, bind(list_models),
              {"The hosted models (OpenAI API)", "models", 200, "", ""}, write_openai_error});
  router.add({"GET", "/v1/models/{id}", Access::kAuthenticated, inference, std::nullopt, bind(show_model),
              {"A hosted model (OpenAI API)", "models", 200, "", ""}, write_openai_error});
  router.add({"POST", "/v1/chat/completions", Access::kAuthenticated, inference, std::nullopt,
              bind(chat_completions),
              {"A chat completion, whole or streamed as server-sent events (OpenAI API)", "models", 200, "", ""},
              write_openai_error});
  router.add({"POST", "/v1/completions", Access::kAuthenticated, inference, std::nullopt, bind(completions),
              {"A text completion, whole or streamed as server-sent events (OpenAI API)", "models", 200, "", ""},
              write_openai_error});
  router.add({"POST", "/v1/embeddings", Access::kAuthenticated, inference, std::nullopt, bind(embeddings),
              {"Embeddings, for models that embed (OpenAI API)", "models", 200, "", ""}, write_openai_error});
}

}  // namespace headroom::api
