// Hosted models' deployments, for the operator: POST, GET and DELETE
// /v1/deployments. A model deployed here is kept in the store (and so
// deployed again at the next start), priced in the catalog before it is
// routed to, and served at once; those of the config file are listed too,
// and changed only there.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>

#include <set>

#include "api/json_body.h"
#include "api/model_deployments.h"
#include "api/route_util.h"
#include "api/router.h"
#include "api/services.h"

namespace headroom::api {
namespace {

namespace json = boost::json;

// The names deployed through the API (the rest came from the config file).
Result<std::set<std::string>> api_deployed(Services& s) {
  HR_ASSIGN_OR_RETURN(auto stored, s.store.all_deployments());
  std::set<std::string> names;
  for (auto& [name, body] : stored) names.insert(std::move(name));
  return names;
}

json::object deployment_view(Services& s, const gateway::Deployment& d, bool from_api) {
  const Timestamp now = s.clock.now();
  auto price = [&](const char* variant, Money fallback) {
    Result<Money> p = s.billing->price_at(ledger::Product::kTokens, d.name, variant, now);
    return (p.is_ok() ? *p : fallback).to_string();
  };
  json::object o{{"name", d.name},
                 {"object", "deployment"},
                 {"origin", from_api ? "api" : "config"},
                 {"input_price", price("input", d.input_price)},
                 {"output_price", price("output", d.output_price)}};
  const std::optional<gateway::ModelInfo> info = s.models->find(d.name);
  if (info) o["created"] = info->created;
  if (!d.upstreams.empty()) {
    json::array upstreams;
    for (const std::string& u : d.upstreams) upstreams.emplace_back(u);
    o["source"] = "upstreams";
    o["upstreams"] = std::move(upstreams);
    o["upstream_model"] = d.upstream_model.empty() ? d.name : d.upstream_model;
    o["upstream_workers"] = d.upstream.max_in_flight;
  } else {
    o["source"] = "file";
    o["file"] = d.file;
    o["context_tokens"] = info ? info->context_tokens : d.engine.context_tokens;
    o["threads"] = d.engine.threads;
    o["kv_cache_mb"] = d.engine.kv_cache_bytes >> 20;
    o["max_running"] = d.engine.max_running;
  }
  return o;
}

Status list_deployments(Services& s, RequestContext&, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(std::set<std::string> from_api, api_deployed(s));
  json::array data;
  for (const gateway::Deployment& d : s.models->deployments()) {
    data.push_back(deployment_view(s, d, from_api.contains(d.name)));
  }
  write_json(response, 200, json::object{{"object", "list"}, {"data", std::move(data)}});
  return Status::ok();
}

Status show_deployment(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  const std::string name(ctx.param("name"));
  const std::optional<gateway::Deployment> d = s.models->deployment(name);
  if (!d) return Status::not_found("no model named \"" + name.substr(0, 128) + "\" is deployed");
  HR_ASSIGN_OR_RETURN(std::set<std::string> from_api, api_deployed(s));
  write_json(response, 200, deployment_view(s, *d, from_api.contains(name)));
  return Status::ok();
}

Status create_deployment(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(auto parsed, parse_deployment(ctx.http.body));
  const std::string& name = parsed.first;
  const config::ModelConfig& model = parsed.second;
  HR_ASSIGN_OR_RETURN(gateway::Deployment deployment, to_deployment(name, model, s.data_dir, ""));
  const std::string stored = deployment_json(name, model);
  // Once the model is open, before it is routed to: kept, then priced, so
  // that every request it serves starts when its prices are in force.
  auto commit = [&]() -> Status {
    HR_RETURN_IF_ERROR(s.store.create_deployment(
        name, stored, audit(s, ctx, "deployment.create", name, json::parse(stored).as_object())));
    if (Status priced = price_deployment(*s.billing, s.clock, name, model); !priced.is_ok()) {
      // Undone; should that fail too, the next start prices it (redeploy_stored).
      (void)s.store.delete_deployment(name, audit(s, ctx, "deployment.delete", name, {{"reason", priced.message()}}));
      return priced;
    }
    return Status::ok();
  };
  const gateway::Deployment deployed = deployment;  // the view leaves the upstreams' key out
  HR_RETURN_IF_ERROR(s.models->deploy(std::move(deployment), commit));
  write_json(response, 201, deployment_view(s, deployed, true));
  return Status::ok();
}

Status delete_deployment(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  const std::string name(ctx.param("name"));
  HR_ASSIGN_OR_RETURN(std::set<std::string> from_api, api_deployed(s));
  if (!from_api.contains(name)) {
    if (s.models->find(name)) {
      return Status::conflict("model " + name + " is declared in the config file ([models." + name +
                              "]): remove it there");
    }
    return Status::not_found("no model named \"" + name.substr(0, 128) + "\" is deployed");
  }
  HR_RETURN_IF_ERROR(s.store.delete_deployment(name, audit(s, ctx, "deployment.delete", name, {})));
  // Not found here is fine: a deployment whose file failed to open at start
  // is kept but not served.
  (void)s.models->undeploy(name);
  // As OpenAI answers the deletion of a model.
  write_json(response, 200, json::object{{"name", name}, {"object", "deployment"}, {"deleted", true}});
  return Status::ok();
}

}  // namespace

void add_deployment_routes(Router& router, Services& s) {
  auto bind = [&s](Status (*f)(Services&, RequestContext&, net::HttpResponse&)) {
    return [&s, f](RequestContext& ctx, net::HttpResponse& r) { return f(s, ctx, r); };
  };
  router.add({"GET", "/v1/deployments", Access::kAuthenticated, store::kScopeAdmin, std::nullopt,
              bind(list_deployments),
              {"The hosted models' deployments: source, prices in force, context and limits, and whether the "
               "config file or the API made each",
               "models", 200, "", "DeploymentList"}});
  router.add({"POST", "/v1/deployments", Access::kAuthenticated, store::kScopeAdmin, std::nullopt,
              bind(create_deployment),
              {"Deploy a model (a GGUF file for the built-in engine, or the base URLs of OpenAI-compatible "
               "servers), priced per million input and output tokens; served at once and after restarts",
               "models", 201, "DeploymentRequest", "Deployment"}});
  router.add({"GET", "/v1/deployments/{name}", Access::kAuthenticated, store::kScopeAdmin, std::nullopt,
              bind(show_deployment), {"One deployment", "models", 200, "", "Deployment"}});
  router.add({"DELETE", "/v1/deployments/{name}", Access::kAuthenticated, store::kScopeAdmin, std::nullopt,
              bind(delete_deployment),
              {"Remove a deployment made through the API: no new requests; those under way end (a built-in "
               "model's cancelled) and are metered",
               "models", 200, "", "DeploymentDeleted"}});
}

}  // namespace headroom::api
