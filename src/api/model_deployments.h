// Hosted models' deployments, as the config file ([models.<name>]) and the
// API (POST /v1/deployments) declare them: one set of fields, one set of
// rules, turned into what the gateway runs (gateway::Deployment).
//
// A deployment made through the API is kept in the store as the JSON that
// deployment_json() writes, and read back at start by parse_deployment().
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"
#include "common/time.h"
#include "config/config.h"
#include "gateway/model_service.h"
#include "ledger/rating.h"
#include "store/store.h"

namespace headroom::api {

// What the gateway runs for a declared model: the built-in model's file
// written under data_dir/models, the upstreams' key read from its
// environment variable. invalid_argument naming the field that is wrong,
// after `field_prefix` ("models.<name>." for the config file).
Result<gateway::Deployment> to_deployment(const std::string& name, const config::ModelConfig& model,
                                          const std::filesystem::path& data_dir, std::string_view field_prefix);

// A body of POST /v1/deployments: "name" and the fields of [models.<name>]
// (docs/models.md), with both prices required. invalid_argument naming the
// field that is wrong.
Result<std::pair<std::string, config::ModelConfig>> parse_deployment(std::string_view body);

// The canonical JSON of a deployment, as stored; parse_deployment() reads it.
std::string deployment_json(const std::string& name, const config::ModelConfig& model);

// Prices a deployment's tokens in the catalog from the earliest time a price
// may take effect, and returns once that time has come, so that a request
// started afterwards finds its prices in force.
Status price_deployment(ledger::PriceCatalog& catalog, const Clock& clock, const std::string& name,
                        const config::ModelConfig& model);

// At start: deploys again those deployed through the API. One the catalog
// has no price for (its deployment was cut short after it was kept) is
// priced first, since its usage could not be rated otherwise. One that
// cannot be served now (its file gone) is logged and kept, so that the
// operator can see and delete it; a name the config file also declares is
// the config file's.
void redeploy_stored(store::Store& store, gateway::ModelService& models, ledger::PriceCatalog& catalog,
                     const Clock& clock, const std::filesystem::path& data_dir);

}  // namespace headroom::api
