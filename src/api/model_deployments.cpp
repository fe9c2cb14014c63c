#include "api/model_deployments.h"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "api/json_body.h"
#include "common/limits.h"
#include "gateway/builtin_model.h"

namespace headroom::api {
namespace json = boost::json;

Result<gateway::Deployment> to_deployment(const std::string& name, const config::ModelConfig& m,
                                          const std::filesystem::path& data_dir, std::string_view field_prefix) {
  auto bad = [&](std::string_view field, const std::string& why) {
    return Status::invalid_argument(std::string(field_prefix) + std::string(field) + ": " + why);
  };
  gateway::Deployment d;
  d.name = name;
  d.file = m.file;
  if (m.file.starts_with(config::kBuiltinModelScheme)) {
    if (m.file.substr(config::kBuiltinModelScheme.size()) != gateway::kBuiltinModelName) {
      return bad("file", "the built-in model is " + std::string(config::kBuiltinModelScheme) +
                             std::string(gateway::kBuiltinModelName));
    }
    HR_ASSIGN_OR_RETURN(d.file, gateway::materialize_builtin_model((data_dir / "models").string()));
  }
  d.upstreams = m.upstreams;
  d.upstream_model = m.upstream_model;
  d.upstream.max_in_flight = m.upstream_workers;
  if (!m.upstream_api_key_env.empty()) {
    const char* key = std::getenv(m.upstream_api_key_env.c_str());
    if (key == nullptr || *key == '\0') return bad("upstream_api_key_env", m.upstream_api_key_env + " is not set");
    d.upstream_api_key = key;
  }
  d.input_price = m.input_price;
  d.output_price = m.output_price;
  d.engine.threads = m.threads;
  d.engine.kv_cache_bytes = std::size_t{m.kv_cache_mb} << 20;
  d.engine.context_tokens = m.context_tokens;
  d.engine.max_running = m.max_running;
  d.engine.max_step_tokens = std::max<std::size_t>(d.engine.max_step_tokens, m.max_running);
  return d;
}

namespace {

// A model's name is its id in the OpenAI API and a path segment of
// /v1/deployments/{name}: letters, digits and . _ - : only.
Status check_model_name(std::string_view name) {
  const bool ok = !name.empty() && name.size() <= limits::kModelNameBytes &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                           c == '_' || c == '-' || c == ':';
                  });
  if (ok) return Status::ok();
  return Status::invalid_argument("name: 1 to " + std::to_string(limits::kModelNameBytes) +
                                  " letters, digits, '.', '_', '-' or ':'");
}

// An optional whole number of [min, max]; absent or null leaves `slot`.
Status read_integer(const JsonBody& body, std::string_view field, std::int64_t min, std::int64_t max,
                    std::uint32_t& slot) {
  const json::value* v = body.object().if_contains(field);
  if (v == nullptr || v->is_null()) return Status::ok();
  if (!v->is_int64() || v->get_int64() < min || v->get_int64() > max) {
    return Status::invalid_argument(std::string(field) + ": a whole number from " + std::to_string(min) + " to " +
                                    std::to_string(max));
  }
  slot = static_cast<std::uint32_t>(v->get_int64());
  return Status::ok();
}

}  // namespace

Result<std::pair<std::string, config::ModelConfig>> parse_deployment(std::string_view text) {
  HR_ASSIGN_OR_RETURN(JsonBody body, JsonBody::parse(text));
  HR_RETURN_IF_ERROR(body.only_fields({"name", "file", "upstreams", "upstream_model", "upstream_api_key_env",
                                       "upstream_workers", "input_price", "output_price", "threads", "kv_cache_mb",
                                       "context_tokens", "max_running"}));
  HR_ASSIGN_OR_RETURN(std::string name, body.required_string("name", limits::kModelNameBytes));
  HR_RETURN_IF_ERROR(check_model_name(name));
  config::ModelConfig m;
  HR_ASSIGN_OR_RETURN(auto file, body.optional_string("file", 4096));
  if (body.object().contains("upstreams")) {
    HR_ASSIGN_OR_RETURN(m.upstreams, body.required_string_array("upstreams", 64, 2048));
  }
  if (file.has_value() == !m.upstreams.empty()) {
    return Status::invalid_argument("give either file (a GGUF model for the built-in engine) or upstreams (base URLs "
                                    "of OpenAI-compatible servers), not both or neither");
  }
  m.file = file.value_or("");
  if (file && file->empty()) return Status::invalid_argument("file: a path to a GGUF file, or builtin:stories260K");
  HR_ASSIGN_OR_RETURN(auto upstream_model, body.optional_string("upstream_model", 256));
  m.upstream_model = upstream_model.value_or("");
  HR_ASSIGN_OR_RETURN(auto key_env, body.optional_string("upstream_api_key_env", 256));
  m.upstream_api_key_env = key_env.value_or("");
  HR_RETURN_IF_ERROR(read_integer(body, "upstream_workers", 1, 4096, m.upstream_workers));
  for (auto [field, slot] : {std::pair{"input_price", &m.input_price}, std::pair{"output_price", &m.output_price}}) {
    HR_ASSIGN_OR_RETURN(std::string price, body.required_string(field, 32));
    auto money = Money::parse(price);
    if (!money || money->nanos() < 0) {
      return Status::invalid_argument(std::string(field) + ": a price per million tokens such as \"0.05\"");
    }
    *slot = *money;
  }
  HR_RETURN_IF_ERROR(read_integer(body, "threads", 1, 256, m.threads));
  HR_RETURN_IF_ERROR(read_integer(body, "kv_cache_mb", 1, 1 << 20, m.kv_cache_mb));
  HR_RETURN_IF_ERROR(read_integer(body, "context_tokens", 2, 1 << 20, m.context_tokens));
  HR_RETURN_IF_ERROR(read_integer(body, "max_running", 1, 256, m.max_running));
  return std::pair{std::move(name), std::move(m)};
}

std::string deployment_json(const std::string& name, const config::ModelConfig& m) {
  json::object o{{"name", name}, {"input_price", m.input_price.to_string()}, {"output_price", m.output_price.to_string()}};
  if (!m.upstreams.empty()) {
    json::array upstreams;
    for (const std::string& u : m.upstreams) upstreams.emplace_back(u);
    o["upstreams"] = std::move(upstreams);
    if (!m.upstream_model.empty()) o["upstream_model"] = m.upstream_model;
    if (!m.upstream_api_key_env.empty()) o["upstream_api_key_env"] = m.upstream_api_key_env;
    o["upstream_workers"] = m.upstream_workers;
  } else {
    o["file"] = m.file;
    if (m.threads != 0) o["threads"] = m.threads;
    o["kv_cache_mb"] = m.kv_cache_mb;
    if (m.context_tokens != 0) o["context_tokens"] = m.context_tokens;
    o["max_running"] = m.max_running;
  }
  return json::serialize(o);
}

Status price_deployment(ledger::PriceCatalog& catalog, const Clock& clock, const std::string& name,
                        const config::ModelConfig& model) {
  std::array<ledger::PriceEntry, 2> prices{
      ledger::PriceEntry{ledger::Product::kTokens, name, "input", {}, model.input_price},
      ledger::PriceEntry{ledger::Product::kTokens, name, "output", {}, model.output_price}};
  HR_RETURN_IF_ERROR(catalog.set_prices(prices));
  // "As soon as may be" is now, or a moment after the last rated usage.
  for (int i = 0; i < 2000 && clock.now() < prices[0].effective_from; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return Status::ok();
}

void redeploy_stored(store::Store& store, gateway::ModelService& models, ledger::PriceCatalog& catalog,
                     const Clock& clock, const std::filesystem::path& data_dir) {
  Result<std::vector<std::pair<std::string, std::string>>> stored = store.all_deployments();
  if (!stored.is_ok()) {
    spdlog::error("the models deployed through the API are not served: {}", stored.status().message());
    return;
  }
  for (const auto& [name, text] : *stored) {
    auto deploy = [&]() -> Status {
      if (models.find(name)) return Status::already_exists("the config file declares it too, and is served");
      HR_ASSIGN_OR_RETURN(auto parsed, parse_deployment(text));
      HR_ASSIGN_OR_RETURN(gateway::Deployment deployment, to_deployment(name, parsed.second, data_dir, ""));
      const bool priced = catalog.price_at(ledger::Product::kTokens, name, "input", clock.now()).is_ok() &&
                          catalog.price_at(ledger::Product::kTokens, name, "output", clock.now()).is_ok();
      if (!priced) HR_RETURN_IF_ERROR(price_deployment(catalog, clock, name, parsed.second));
      return models.deploy(std::move(deployment));
    };
    if (Status deployed = deploy(); !deployed.is_ok()) {
      spdlog::error("model {} (deployed through the API) is not served: {}", name, deployed.message());
    }
  }
}

}  // namespace headroom::api
