// The client commands, one ApiCommand each. To add one (usage,
// invoices...): say which arguments it takes, which call they make, and
// which columns show the answer; api_command.cpp does the rest. The jobs
// and `run` are in job_commands.cpp, the fleet's in fleet_commands.cpp,
// balance, usage, invoices and credits in billing_commands.cpp; `generate`,
// which runs a model locally rather than calling the API, in
// generate_command.cpp.
#include "cli/commands.h"

#include <CLI/CLI.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <ostream>

#include "cli/api_command.h"
#include "cli/billing_commands.h"
#include "cli/market_commands.h"
#include "cli/fleet_commands.h"
#include "cli/generate_command.h"
#include "cli/job_commands.h"
#include "cli/model_commands.h"
#include "common/time.h"

namespace headroom::cli {
namespace {

namespace json = boost::json;

using Env = std::shared_ptr<const ClientEnvironment>;

const std::vector<Column> kTenantColumns = {
    {"ID", "id"}, {"NAME", "name"}, {"KIND", "kind"}, {"CREATED", "created_at"}};

const std::vector<Column> kKeyListColumns = {
    {"ID", "id"},           {"NAME", "name"},          {"PREFIX", "prefix"},      {"SCOPES", "scopes"},
    {"CREATED", "created_at"}, {"EXPIRES", "expires_at"}, {"REVOKED", "revoked_at"}};

const std::vector<Column> kKeyColumns = {
    {"ID", "id"},         {"TENANT", "tenant_id"},   {"NAME", "name"},          {"PREFIX", "prefix"},
    {"SCOPES", "scopes"}, {"CREATED", "created_at"}, {"EXPIRES", "expires_at"}, {"REVOKED", "revoked_at"}};

std::vector<Column> with(std::vector<Column> columns, std::initializer_list<Column> more) {
  columns.insert(columns.end(), more);
  return columns;
}

const std::vector<Column> kMeColumns = {
    {"TENANT", "tenant.id"}, {"TENANT NAME", "tenant.name"}, {"KIND", "tenant.kind"},
    {"KEY", "key.id"},       {"KEY NAME", "key.name"},       {"PREFIX", "key.prefix"},
    {"SCOPES", "key.scopes"}, {"EXPIRES", "key.expires_at"}};

// An RFC 3339 time, checked while parsing and sent on in UTC.
const CLI::Validator kRfc3339(
    [](std::string& text) -> std::string {
      auto parsed = parse_rfc3339(text);
      if (!parsed.is_ok()) return "'" + text + "' is not an RFC 3339 time such as 2026-12-31T23:59:59Z";
      text = to_rfc3339(*parsed);
      return {};
    },
    "RFC3339");

// The secret of a new key is in the answer once and never again.
void note_new_secret(const json::value& answer, std::ostream& err) {
  const std::string key_id = cell_text(find_path(answer, "id"));
  err << "warning: this is the only time the secret of " << key_id
      << " is shown: store it now (for example in HEADROOM_API_KEY); it cannot be retrieved later\n";
}

void add_tenant_commands(CLI::App& app, int& exit_code, const Env& env) {
  CLI::App* tenants = add_command_group(app, "tenants", "Create and look at tenants (admin)", "headroom tenants list");

  struct CreateArgs {
    std::string name;
    std::string kind = "external";
  };
  auto create = std::make_shared<CreateArgs>();
  add_api_command(*tenants,
                  {.name = "create",
                   .description = "Create a tenant",
                   .example = "headroom tenants create acme --kind external",
                   .add_arguments =
                       [create](CLI::App& command) {
                         command.add_option("name", create->name, "Tenant name")->required();
                         command.add_option("--kind", create->kind, "internal (the fleet's owner) or external")
                             ->check(CLI::IsMember({"internal", "external"}))
                             ->capture_default_str();
                       },
                   .make_call = [create]() -> Result<ApiCall> {
                     return ApiCall{"POST", "/v1/tenants", json::object{{"name", create->name}, {"kind", create->kind}}};
                   },
                   .shape = Shape::kRecord,
                   .columns = kTenantColumns},
                  exit_code, env);

  add_api_command(*tenants,
                  {.name = "list",
                   .description = "List tenants",
                   .example = "headroom tenants list --limit 20 --output json",
                   .make_call = []() -> Result<ApiCall> { return ApiCall{"GET", "/v1/tenants", std::nullopt}; },
                   .shape = Shape::kList,
                   .columns = kTenantColumns,
                   .paging = Paging::kCursor},
                  exit_code, env);

  auto show_id = std::make_shared<std::string>();
  add_api_command(*tenants,
                  {.name = "show",
                   .description = "Show one tenant",
                   .example = "headroom tenants show ten_k3v9x2m1q8d7r4t6p0za",
                   .add_arguments =
                       [show_id](CLI::App& command) {
                         command.add_option("id", *show_id, "Tenant id (ten_...)")->required();
                       },
                   .make_call = [show_id]() -> Result<ApiCall> {
                     return ApiCall{"GET", "/v1/tenants/" + encode_path_segment(*show_id), std::nullopt};
                   },
                   .shape = Shape::kRecord,
                   .columns = kTenantColumns},
                  exit_code, env);
}

void add_key_commands(CLI::App& app, int& exit_code, const Env& env) {
  CLI::App* keys = add_command_group(app, "keys", "Create, list, revoke and rotate API keys",
                                     "headroom keys list --tenant ten_k3v9x2m1q8d7r4t6p0za");

  struct CreateArgs {
    std::string tenant;
    std::string name;
    std::vector<std::string> scopes;
    std::string expires_at;
  };
  auto create = std::make_shared<CreateArgs>();
  add_api_command(
      *keys,
      {.name = "create",
       .description = "Create an API key for a tenant; its secret is shown once",
       .example = "headroom keys create --tenant ten_k3v9x2m1q8d7r4t6p0za --name ci --scopes compute,inference",
       .add_arguments =
           [create](CLI::App& command) {
             command.add_option("--tenant", create->tenant, "Tenant id (ten_...)")->required();
             command.add_option("--name", create->name, "A name to know the key by")->required();
             command.add_option("--scopes", create->scopes, "What the key may do, comma-separated: compute,inference")
                 ->required()
                 ->delimiter(',');
             command.add_option("--expires-at", create->expires_at, "When the key stops working (default: never)")
                 ->transform(kRfc3339);
           },
       .make_call = [create]() -> Result<ApiCall> {
         if (create->scopes.empty()) return Status::invalid_argument("--scopes needs at least one scope");
         json::array scopes;
         for (const auto& scope : create->scopes) {
           if (scope.empty()) return Status::invalid_argument("--scopes holds an empty scope");
           scopes.emplace_back(scope);
         }
         json::object body{{"name", create->name}, {"scopes", std::move(scopes)}};
         if (!create->expires_at.empty()) body["expires_at"] = create->expires_at;
         return ApiCall{"POST", "/v1/tenants/" + encode_path_segment(create->tenant) + "/keys", std::move(body)};
       },
       .shape = Shape::kRecord,
       .columns = with(kKeyColumns, {{"KEY", "key"}}),
       .notes = note_new_secret},
      exit_code, env);

  auto list_tenant = std::make_shared<std::string>();
  add_api_command(*keys,
                  {.name = "list",
                   .description = "List a tenant's API keys (never their secrets)",
                   .example = "headroom keys list --tenant ten_k3v9x2m1q8d7r4t6p0za",
                   .add_arguments =
                       [list_tenant](CLI::App& command) {
                         command.add_option("--tenant", *list_tenant, "Tenant id (ten_...)")->required();
                       },
                   .make_call = [list_tenant]() -> Result<ApiCall> {
                     return ApiCall{"GET", "/v1/tenants/" + encode_path_segment(*list_tenant) + "/keys",
                                    std::nullopt};
                   },
                   .shape = Shape::kList,
                   .columns = kKeyListColumns},
                  exit_code, env);

  auto revoke_id = std::make_shared<std::string>();
  add_api_command(*keys,
                  {.name = "revoke",
                   .description = "Revoke an API key: it stops working at once",
                   .example = "headroom keys revoke key_p0za4t6r8d7q1m2x9v3k",
                   .add_arguments =
                       [revoke_id](CLI::App& command) {
                         command.add_option("key_id", *revoke_id, "Key id (key_...)")->required();
                       },
                   .make_call = [revoke_id]() -> Result<ApiCall> {
                     return ApiCall{"DELETE", "/v1/keys/" + encode_path_segment(*revoke_id), std::nullopt};
                   },
                   .shape = Shape::kRecord,
                   .columns = kKeyColumns},
                  exit_code, env);

  struct RotateArgs {
    std::string key_id;
    std::string old_expires_at;
  };
  auto rotate = std::make_shared<RotateArgs>();
  add_api_command(
      *keys,
      {.name = "rotate",
       .description = "Replace an API key with a new one; the old one keeps working for a while (default 24h)",
       .example = "headroom keys rotate key_p0za4t6r8d7q1m2x9v3k --old-expires-at 2026-12-01T00:00:00Z",
       .add_arguments =
           [rotate](CLI::App& command) {
             command.add_option("key_id", rotate->key_id, "Key id (key_...)")->required();
             command.add_option("--old-expires-at", rotate->old_expires_at,
                                "When the old key stops working (default: in 24 hours)")
                 ->transform(kRfc3339);
           },
       .make_call = [rotate]() -> Result<ApiCall> {
         json::object body;
         if (!rotate->old_expires_at.empty()) body["old_key_expires_at"] = rotate->old_expires_at;
         return ApiCall{"POST", "/v1/keys/" + encode_path_segment(rotate->key_id) + "/rotate", std::move(body)};
       },
       .shape = Shape::kRecord,
       .columns = with(kKeyColumns, {{"REPLACES", "replaces"}, {"KEY", "key"}}),
       .notes =
           [rotate](const json::value& answer, std::ostream& err) {
             note_new_secret(answer, err);
             const std::string old_id = cell_text(find_path(answer, "replaces"));
             err << "note: the old key " << (old_id == "-" ? rotate->key_id : old_id) << " keeps working "
                 << (rotate->old_expires_at.empty() ? "for 24 hours" : "until " + rotate->old_expires_at) << "\n";
           }},
      exit_code, env);
}

void add_me_command(CLI::App& app, int& exit_code, const Env& env) {
  add_api_command(app,
                  {.name = "me",
                   .description = "Show the tenant and the API key you are using",
                   .example = "headroom me --url https://headroom.example:8443",
                   .make_call = []() -> Result<ApiCall> { return ApiCall{"GET", "/v1/me", std::nullopt}; },
                   .shape = Shape::kRecord,
                   .columns = kMeColumns},
                  exit_code, env);
}

}  // namespace

void add_client_commands(CLI::App& app, int& exit_code, std::shared_ptr<const ClientEnvironment> env) {
  // CLI11 throws only on a programmer's error here (a name added twice):
  // crash loudly rather than run without the commands.
  try {
    add_tenant_commands(app, exit_code, env);
    add_key_commands(app, exit_code, env);
    add_me_command(app, exit_code, env);
    add_job_commands(app, exit_code, env);
    add_fleet_commands(app, exit_code, env);
    add_billing_commands(app, exit_code, env);
    add_model_commands(app, exit_code, env);
    add_market_commands(app, exit_code, env);
    add_generate_command(app, exit_code, env);
  } catch (const std::exception& e) {
    CHECK(false) << "cannot add the client commands: " << e.what();
  }
}

void add_client_commands(CLI::App& app, int& exit_code) {
  std::shared_ptr<const ClientEnvironment> env;
  try {
    env = std::make_shared<const ClientEnvironment>(ClientEnvironment::system());
  } catch (const std::exception& e) {
    CHECK(false) << "cannot set up the client commands: " << e.what();
  }
  add_client_commands(app, exit_code, std::move(env));
}

}  // namespace headroom::cli
