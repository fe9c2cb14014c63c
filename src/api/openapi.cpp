// The OpenAPI 3.0 document, built from the router's own table so that it
// lists every route there is: a route cannot exist undocumented.
#include <boost/json.hpp>

#include "api/router.h"
#include "api/services.h"

namespace headroom::api {
namespace {

namespace json = boost::json;

// Shapes shared by routes, referenced from RouteDoc by name.
constexpr const char* kSchemas = R"json({
  "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
    "required": ["code", "message", "request_id"], "properties": {
      "code": {"type": "string", "description": "stable machine code, such as not_found"},
      "message": {"type": "string"}, "request_id": {"type": "string"}}}}},
  "Health": {"type": "object", "properties": {"status": {"type": "string"}, "schema_version": {"type": "integer"}}},
  "Tenant": {"type": "object", "required": ["id", "name", "kind", "created_at"], "properties": {
    "id": {"type": "string", "example": "ten_k3v9x2m1q8d7r4t6p0zab"}, "name": {"type": "string"},
    "kind": {"type": "string", "enum": ["internal", "external"]},
    "created_at": {"type": "string", "format": "date-time"}}},
  "TenantCreate": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
    "name": {"type": "string", "maxLength": 64, "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"},
    "kind": {"type": "string", "enum": ["internal", "external"], "default": "external"}}},
  "TenantList": {"type": "object", "required": ["data", "has_more"], "properties": {
    "data": {"type": "array", "items": {"$ref": "#/components/schemas/Tenant"}}, "has_more": {"type": "boolean"}}},
  "Key": {"type": "object", "required": ["id", "tenant_id", "name", "scopes", "prefix", "created_at"], "properties": {
    "id": {"type": "string"}, "tenant_id": {"type": "string"}, "name": {"type": "string"},
    "scopes": {"type": "array", "items": {"type": "string", "enum": ["admin", "compute", "inference", "billing"]}},
    "prefix": {"type": "string", "description": "the key's first 11 characters, to recognise it"},
    "created_at": {"type": "string", "format": "date-time"},
    "expires_at": {"type": "string", "format": "date-time", "nullable": true},
    "revoked_at": {"type": "string", "format": "date-time", "nullable": true},
    "replaces": {"type": "string", "description": "the key this one rotated"}}},
  "KeyWithSecret": {"allOf": [{"$ref": "#/components/schemas/Key"}, {"type": "object", "required": ["key"],
    "properties": {"key": {"type": "string", "description": "the secret, shown this once", "pattern": "^hr_[0-9A-Za-z]{38}$"}}}]},
  "KeyCreate": {"type": "object", "required": ["name", "scopes"], "additionalProperties": false, "properties": {
    "name": {"type": "string", "maxLength": 64},
    "scopes": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": ["admin", "compute", "inference", "billing"]}},
    "expires_at": {"type": "string", "format": "date-time"}}},
  "KeyRotate": {"type": "object", "additionalProperties": false, "properties": {
    "old_key_expires_at": {"type": "string", "format": "date-time"}}},
  "KeyList": {"type": "object", "required": ["data", "has_more"], "properties": {
    "data": {"type": "array", "items": {"$ref": "#/components/schemas/Key"}}, "has_more": {"type": "boolean"}}},
  "Me": {"type": "object", "required": ["tenant", "key"], "properties": {
    "tenant": {"$ref": "#/components/schemas/Tenant"}, "key": {"$ref": "#/components/schemas/Key"}}},
  "AuditRecord": {"type": "object", "properties": {
    "id": {"type": "string"}, "time": {"type": "string", "format": "date-time"},
    "actor_tenant_id": {"type": "string"}, "actor_key_id": {"type": "string"}, "request_id": {"type": "string"},
    "action": {"type": "string"}, "target_id": {"type": "string"}, "details": {"type": "object"}}},
  "AuditList": {"type": "object", "required": ["data", "has_more"], "properties": {
    "data": {"type": "array", "items": {"$ref": "#/components/schemas/AuditRecord"}}, "has_more": {"type": "boolean"}}},
  "Fleet": {"type": "object", "properties": {
    "source": {"type": "string"}, "virtual": {"type": "boolean"},
    "gpu_types": {"type": "array", "items": {"type": "object"}},
    "nodes": {"type": "array", "items": {"type": "object"}}}},
  "JobRequest": {"type": "object", "required": ["gpus", "command"], "properties": {
    "gpus": {"type": "integer", "minimum": 1}, "gpu_type": {"type": "string", "description": "a GPU type, or any"},
    "tier": {"type": "string", "enum": ["internal", "reserved", "on-demand", "spot"]},
    "max_price_per_gpu_hour": {"type": "string", "nullable": true, "description": "spot only: the most paid per GPU-hour"},
    "command": {"type": "array", "items": {"type": "string"}}, "args": {"type": "array", "items": {"type": "string"}},
    "env": {"type": "object", "additionalProperties": {"type": "string"}},
    "workdir": {"type": "string", "nullable": true},
    "packing": {"type": "string", "enum": ["nvlink", "rack", "block", "any"]},
    "max_runtime_s": {"type": "integer", "minimum": 1}, "requeue_on_preempt": {"type": "boolean"},
    "reservation_id": {"type": "string", "nullable": true}, "queue_if_over_quota": {"type": "boolean"}}},
  "Job": {"type": "object", "required": ["id", "state"], "properties": {
    "id": {"type": "string"}, "tenant_id": {"type": "string"},
    "state": {"type": "string", "enum": ["queued", "starting", "running", "preempting", "preempted", "succeeded",
                                         "failed", "cancelled", "lost"]},
    "reason": {"type": "string"}, "message": {"type": "string"}, "exit_code": {"type": "integer", "nullable": true},
    "gpus": {"type": "integer"}, "gpu_type": {"type": "string"}, "tier": {"type": "string"},
    "assigned_gpus": {"type": "array", "items": {"type": "string"}},
    "created_at": {"type": "string", "format": "date-time"},
    "started_at": {"type": "string", "format": "date-time", "nullable": true},
    "ended_at": {"type": "string", "format": "date-time", "nullable": true},
    "preemptions": {"type": "integer"}, "queue_position": {"type": "integer", "nullable": true},
    "spec": {"$ref": "#/components/schemas/JobRequest"},
    "history": {"type": "array", "items": {"type": "object", "properties": {
      "state": {"type": "string"}, "at": {"type": "string", "format": "date-time"},
      "reason": {"type": "string"}, "message": {"type": "string"}}}}}},
  "JobList": {"type": "object", "required": ["data", "has_more"], "properties": {
    "data": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}, "has_more": {"type": "boolean"}}},
  "NodeState": {"type": "object", "properties": {"node": {"type": "string"}, "state": {"type": "string"}}},
  "Surplus": {"type": "object", "required": ["data"], "properties": {"data": {"type": "array", "items": {
    "type": "object", "properties": {"gpu_type": {"type": "string"}, "total": {"type": "integer"},
      "down": {"type": "integer"}, "internal_in_use": {"type": "integer"}, "internal_buffer": {"type": "integer"},
      "reserved": {"type": "integer"}, "on_demand": {"type": "integer"}, "spot": {"type": "integer"},
      "idle": {"type": "integer"}, "sellable_now": {"type": "integer"}}}}}},
  "Quota": {"type": "object", "properties": {
    "max_queued_jobs": {"type": "integer", "nullable": true}, "fair_share_weight": {"type": "number"},
    "gpu_limits": {"type": "array", "items": {"type": "object", "required": ["tier", "max_gpus"], "properties": {
      "tier": {"type": "string"}, "gpu_type": {"type": "string"}, "max_gpus": {"type": "integer"}}}}}},
  "QuoteRequest": {"type": "object", "required": ["gpu_type", "gpus", "start", "end"], "properties": {
    "gpu_type": {"type": "string"}, "gpus": {"type": "integer"}, "packing": {"type": "string"},
    "start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"}}},
  "Quote": {"type": "object", "required": ["quote_id", "price", "available", "expires_at"], "properties": {
    "quote_id": {"type": "string"}, "gpu_type": {"type": "string"}, "gpus": {"type": "integer"},
    "packing": {"type": "string"}, "start": {"type": "string", "format": "date-time"},
    "end": {"type": "string", "format": "date-time"}, "available": {"type": "integer"},
    "price_per_gpu_hour": {"type": "string"}, "price": {"type": "string"}, "currency": {"type": "string"},
    "expires_at": {"type": "string", "format": "date-time"}}},
  "ReservationRequest": {"type": "object",
    "properties": {"quote_id": {"type": "string"}, "tenant_id": {"type": "string"}, "gpu_type": {"type": "string"},
      "gpus": {"type": "integer"},
      "packing": {"type": "string"}, "start": {"type": "string", "format": "date-time"},
      "end": {"type": "string", "format": "date-time"}}},
  "Reservation": {"type": "object", "required": ["id"], "properties": {
    "id": {"type": "string"}, "tenant_id": {"type": "string"}, "gpu_type": {"type": "string"},
    "gpus": {"type": "integer"}, "packing": {"type": "string"},
    "start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"},
    "created_at": {"type": "string", "format": "date-time"},
    "cancelled_at": {"type": "string", "format": "date-time", "nullable": true}}},
  "ReservationList": {"type": "object", "required": ["data", "has_more"], "properties": {
    "data": {"type": "array", "items": {"$ref": "#/components/schemas/Reservation"}}, "has_more": {"type": "boolean"}}},
  "Balance": {"type": "object", "required": ["tenant_id", "balance", "available", "state"], "properties": {
    "tenant_id": {"type": "string"}, "currency": {"type": "string"}, "balance": {"type": "string"},
    "held": {"type": "string"}, "credit_limit": {"type": "string"}, "available": {"type": "string"},
    "owed": {"type": "string"}, "state": {"type": "string", "enum": ["ok", "exhausted"]}, "month": {"type": "string"},
    "month_spend": {"type": "string"}, "monthly_budget": {"type": "string", "nullable": true},
    "alerts": {"type": "array", "items": {"type": "object", "properties": {"month": {"type": "string"},
      "percent": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}, "spend": {"type": "string"},
      "budget": {"type": "string"}}}}}},
  "CreditRequest": {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "string"},
    "kind": {"type": "string", "enum": ["deposit", "grant"]}, "note": {"type": "string"}}},
  "Credit": {"type": "object", "required": ["id", "amount"], "properties": {"id": {"type": "string"},
    "tenant_id": {"type": "string"}, "amount": {"type": "string"}, "kind": {"type": "string"},
    "note": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"},
    "balance": {"$ref": "#/components/schemas/Balance"}}},
  "Price": {"type": "object", "required": ["product", "unit_price", "effective_from"], "properties": {
    "product": {"type": "string", "enum": ["gpu_time", "tokens"]}, "gpu_type": {"type": "string"},
    "tier": {"type": "string"}, "model": {"type": "string"}, "direction": {"type": "string", "enum": ["input", "output"]},
    "unit_price": {"type": "string"}, "unit": {"type": "string", "enum": ["gpu_hour", "million_tokens"]},
    "effective_from": {"type": "string", "format": "date-time"}}},
  "PriceList": {"type": "object", "required": ["data"], "properties": {
    "at": {"type": "string", "format": "date-time"}, "currency": {"type": "string"},
    "data": {"type": "array", "items": {"$ref": "#/components/schemas/Price"}},
    "scheduled": {"type": "array", "items": {"$ref": "#/components/schemas/Price"}}}},
  "PriceChange": {"type": "object", "required": ["prices"], "properties": {
    "prices": {"type": "array", "items": {"$ref": "#/components/schemas/Price"}}}},
  "DeploymentRequest": {"type": "object", "required": ["name", "input_price", "output_price"], "properties": {
    "name": {"type": "string"}, "file": {"type": "string"},
    "upstreams": {"type": "array", "items": {"type": "string"}}, "upstream_model": {"type": "string"},
    "upstream_api_key_env": {"type": "string"}, "upstream_workers": {"type": "integer"},
    "input_price": {"type": "string"}, "output_price": {"type": "string"}, "threads": {"type": "integer"},
    "kv_cache_mb": {"type": "integer"}, "context_tokens": {"type": "integer"}, "max_running": {"type": "integer"}}},
  "Deployment": {"type": "object", "required": ["name", "origin", "source", "input_price", "output_price"],
    "properties": {
    "name": {"type": "string"}, "object": {"type": "string"}, "origin": {"type": "string", "enum": ["config", "api"]},
    "source": {"type": "string", "enum": ["file", "upstreams"]}, "file": {"type": "string"},
    "upstreams": {"type": "array", "items": {"type": "string"}}, "upstream_model": {"type": "string"},
    "upstream_workers": {"type": "integer"}, "input_price": {"type": "string"}, "output_price": {"type": "string"},
    "created": {"type": "integer"}, "context_tokens": {"type": "integer"}, "threads": {"type": "integer"},
    "kv_cache_mb": {"type": "integer"}, "max_running": {"type": "integer"}}},
  "DeploymentDeleted": {"type": "object", "required": ["name", "deleted"], "properties": {
    "name": {"type": "string"}, "object": {"type": "string"}, "deleted": {"type": "boolean"}}},
  "DeploymentList": {"type": "object", "required": ["data"], "properties": {
    "object": {"type": "string"}, "data": {"type": "array", "items": {"$ref": "#/components/schemas/Deployment"}}}},
  "Report": {"type": "object", "required": ["data"], "properties": {
    "from": {"type": "string", "format": "date-time"}, "to": {"type": "string", "format": "date-time"},
    "data": {"type": "array", "items": {"type": "object"}}}},
  "Offers": {"type": "object", "required": ["data"], "properties": {
    "at": {"type": "string", "format": "date-time"}, "currency": {"type": "string"},
    "data": {"type": "array", "items": {"type": "object", "required": ["gpu_type"], "properties": {
      "gpu_type": {"type": "string"}, "gpus": {"type": "integer"},
      "sites": {"type": "array", "items": {"type": "object", "properties": {"region": {"type": "string"},
        "site": {"type": "string"}, "gpus": {"type": "integer"}, "available": {"type": "integer"}}}},
      "on_demand": {"type": "object", "properties": {"price_per_gpu_hour": {"type": "string", "nullable": true},
        "available_now": {"type": "integer"}}},
      "reserved": {"type": "object", "properties": {"price_per_gpu_hour": {"type": "string", "nullable": true},
        "reservable_by_day": {"type": "array", "items": {"type": "object", "properties": {
          "date": {"type": "string"}, "gpus": {"type": "integer"}}}}}},
      "spot": {"type": "object", "properties": {"price_per_gpu_hour": {"type": "string", "nullable": true},
        "floor_per_gpu_hour": {"type": "string"}, "supply_now": {"type": "integer"},
        "history_24h": {"type": "array", "items": {"type": "object", "properties": {
          "from": {"type": "string", "format": "date-time"}, "price_per_gpu_hour": {"type": "string"}}}}}}}}}}},
  "Economics": {"type": "object", "required": ["data"], "properties": {
    "at": {"type": "string", "format": "date-time"}, "currency": {"type": "string"},
    "data": {"type": "array", "items": {"type": "object", "required": ["gpu_type", "book_value"], "properties": {
      "gpu_type": {"type": "string"}, "gpus": {"type": "integer"}, "purchase_price": {"type": "string"},
      "in_service": {"type": "string", "format": "date-time"}, "useful_life_years": {"type": "integer"},
      "salvage_value": {"type": "string"}, "depreciation": {"type": "string"}, "book_value": {"type": "string"},
      "depreciation_per_gpu_hour": {"type": "string"}, "marginal_cost_per_gpu_hour": {"type": "string"},
      "other_cost_per_gpu_hour": {"type": "string"}, "utilization_percent": {"type": "string", "nullable": true},
      "full_cost_per_gpu_hour": {"type": "string", "nullable": true},
      "full_cost_per_gpu_hour_at_floor_utilization": {"type": "string"},
      "spot_floor": {"type": "object"}, "list_prices": {"type": "object"},
      "schedule": {"type": "array", "items": {"type": "object"}}}}}}},
  "BillingTerms": {"type": "object", "properties": {"credit_limit": {"type": "string"},
    "monthly_budget": {"type": "string"}}},
  "UsageReport": {"type": "object", "required": ["data"], "properties": {"tenant_id": {"type": "string"},
    "from": {"type": "string", "format": "date-time"}, "to": {"type": "string", "format": "date-time"},
    "group_by": {"type": "string"}, "total_cost": {"type": "string"}, "data": {"type": "array", "items": {
      "type": "object", "properties": {"group": {"type": "string"}, "product": {"type": "string"},
        "quantity": {"type": "integer"}, "unit": {"type": "string"}, "events": {"type": "integer"},
        "cost": {"type": "string"}}}}}},
  "UsageBatch": {"type": "object", "required": ["events"], "properties": {"events": {"type": "array", "items": {
    "type": "object", "required": ["id", "tenant_id", "product", "quantity", "start", "end"], "properties": {
      "id": {"type": "string"}, "tenant_id": {"type": "string"},
      "product": {"type": "string", "enum": ["gpu_time", "tokens"]}, "gpu_type": {"type": "string"},
      "tier": {"type": "string"}, "model": {"type": "string"}, "direction": {"type": "string", "enum": ["input", "output"]},
      "quantity": {"type": "integer"}, "unit_price": {"type": "string"},
      "start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"},
      "source_id": {"type": "string"}, "key_id": {"type": "string"}}}}}},
  "UsageBatchResult": {"type": "object", "required": ["data", "recorded", "rejected"], "properties": {
    "recorded": {"type": "integer"}, "rejected": {"type": "integer"}, "data": {"type": "array", "items": {
      "type": "object", "properties": {"id": {"type": "string"}, "status": {"type": "string"},
        "cost": {"type": "string"}, "error": {"type": "object"}}}}}},
  "InvoiceSummary": {"type": "object", "required": ["id", "month", "total"], "properties": {
    "id": {"type": "string"}, "tenant_id": {"type": "string"}, "month": {"type": "string"},
    "period_start": {"type": "string", "format": "date-time"}, "period_end": {"type": "string", "format": "date-time"},
    "status": {"type": "string", "enum": ["open", "closed"]}, "total": {"type": "string"},
    "currency": {"type": "string"}}},
  "InvoiceList": {"type": "object", "required": ["data", "has_more"], "properties": {
    "data": {"type": "array", "items": {"$ref": "#/components/schemas/InvoiceSummary"}}, "has_more": {"type": "boolean"}}},
  "Invoice": {"allOf": [{"$ref": "#/components/schemas/InvoiceSummary"}, {"type": "object", "properties": {
    "lines": {"type": "array", "items": {"type": "object", "properties": {"description": {"type": "string"},
      "product": {"type": "string"}, "item": {"type": "string"}, "variant": {"type": "string"},
      "unit_price": {"type": "string"}, "price_unit": {"type": "string"}, "quantity": {"type": "integer"},
      "unit": {"type": "string"}, "charges": {"type": "integer"}, "amount": {"type": "string"}}}},
    "adjustments": {"type": "array", "items": {"type": "object"}}, "rounding": {"type": "string"},
    "reconciled": {"type": "boolean"}}}]}
})json";

json::object ref(const std::string& schema) { return {{"$ref", "#/components/schemas/" + schema}}; }

json::object error_response(std::string description) {
  return {{"description", std::move(description)},
          {"content", {{"application/json", {{"schema", ref("Error")}}}}}};
}

}  // namespace

std::string openapi_document(const Router& router) {
  json::object paths;
  for (const Route& route : router.routes()) {
    json::object op;
    op["summary"] = route.doc.summary;
    op["tags"] = json::array{json::string(route.doc.tag)};
    op["operationId"] = route.method + " " + route.pattern;
    json::array parameters;
    std::string_view pattern = route.pattern;
    for (std::size_t open = pattern.find('{'); open != std::string_view::npos; open = pattern.find('{', open + 1)) {
      std::size_t close = pattern.find('}', open);
      parameters.push_back(json::object{{"name", std::string(pattern.substr(open + 1, close - open - 1))},
                                        {"in", "path"},
                                        {"required", true},
                                        {"schema", {{"type", "string"}}}});
    }
    for (const auto& q : route.doc.query_params) {
      parameters.push_back(
          json::object{{"name", q}, {"in", "query"}, {"required", false}, {"schema", {{"type", "string"}}}});
    }
    if (!parameters.empty()) op["parameters"] = std::move(parameters);
    if (!route.doc.request_schema.empty()) {
      op["requestBody"] = {{"required", true},
                           {"content", {{"application/json", {{"schema", ref(route.doc.request_schema)}}}}}};
    }
    json::object ok{{"description", "success"}};
    if (!route.doc.response_schema.empty()) {
      ok["content"] = {{route.doc.response_content_type, {{"schema", ref(route.doc.response_schema)}}}};
    } else {
      ok["content"] = {{route.doc.response_content_type, json::object{{"schema", json::object{}}}}};
    }
    json::object responses{{std::to_string(route.doc.success_status), std::move(ok)}};
    if (route.access == Access::kAuthenticated) {
      op["security"] = json::array{json::object{{"bearer", json::array{}}}};
      responses["401"] = error_response("missing, invalid, revoked or expired API key");
      if (route.scope != 0) responses["403"] = error_response("the key lacks the needed scope");
    }
    if (route.ownership || route.pattern.find('{') != std::string::npos) {
      responses["404"] = error_response("no such object, or not one the caller may see");
    }
    if (!route.doc.request_schema.empty() || !route.doc.query_params.empty()) {
      responses["400"] = error_response("invalid input; the message names what was wrong");
    }
    op["responses"] = std::move(responses);
    std::string method = route.method;
    for (char& c : method) c = static_cast<char>(std::tolower(c));
    json::value& entry = paths[route.pattern];
    if (!entry.is_object()) entry = json::object();
    entry.as_object()[method] = std::move(op);
  }
  json::object doc{
      {"openapi", "3.0.3"},
      {"info",
       {{"title", "Headroom control API"},
        {"version", HEADROOM_VERSION},
        {"description", "Sell a GPU fleet's spare capacity as raw compute and hosted models. Errors are "
                        "{\"error\":{\"code\",\"message\",\"request_id\"}}; money is a decimal string of US dollars."}}},
      {"paths", std::move(paths)},
      {"components",
       {{"schemas", json::parse(kSchemas)},
        {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}, {"description", "hr_... API key"}}}}}}}};
  return json::serialize(doc);
}

}  // namespace headroom::api
