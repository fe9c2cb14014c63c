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
#include "config/config.h"
#include "gateway/model_service.h"

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

}  // namespace headroom::api
