#include "store/records.h"

namespace headroom::store {

std::string_view to_string(TenantKind kind) {
  return kind == TenantKind::kInternal ? "internal" : "external";
}

Result<TenantKind> parse_tenant_kind(std::string_view text) {
  if (text == "internal") return TenantKind::kInternal;
  if (text == "external") return TenantKind::kExternal;
  return Status::invalid_argument("unknown tenant kind \"" + std::string(text.substr(0, 40)) +
                                  "\" (expected internal or external)");
}

namespace {
constexpr std::pair<Scope, std::string_view> kScopeNames[] = {
    {kScopeAdmin, "admin"}, {kScopeCompute, "compute"}, {kScopeInference, "inference"}, {kScopeBilling, "billing"}};
}

std::vector<std::string_view> scope_names(ScopeSet scopes) {
  std::vector<std::string_view> names;
  for (auto [bit, name] : kScopeNames) {
    if (scopes & bit) names.push_back(name);
  }
  return names;
}

Result<ScopeSet> parse_scope(std::string_view name) {
  for (auto [bit, scope_name] : kScopeNames) {
    if (name == scope_name) return static_cast<ScopeSet>(bit);
  }
  return Status::invalid_argument("unknown scope \"" + std::string(name.substr(0, 40)) +
                                  "\" (expected admin, compute, inference or billing)");
}

}  // namespace headroom::store
