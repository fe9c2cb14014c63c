// Fuzz target for the request-to-JSON path: routing, authentication, JSON
// body parsing and every handler, over an in-memory store. Jobs go through
// the real ComputeService and scheduler, but to an executor that starts
// nothing: fuzzed commands must never run.
//
// Input: "METHOD TARGET\n" then the body. The request is made with the admin
// key (so that handlers run) unless the body starts with '!', which sends no
// key. "$T" and "$K" in the input stand for the id of a real tenant and of
// one of its keys, so that mutations reach handlers past "not found".
// Whatever the input, the answer must be a 2xx or 4xx with a JSON body (a 5xx
// or a crash is a bug).
#include <boost/json/parse.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>

#include "api/router.h"
#include "api/services.h"
#include "auth/api_key.h"
#include "common/ids.h"
#include "compute/compute_service.h"
#include "fleet/detect.h"

using namespace headroom;

namespace {

// Pretends to start every job, which then runs until killed.
class InertExecutor final : public exec::Executor {
 public:
  Result<exec::ProcessHandle> start(const exec::LaunchSpec&) override { return exec::ProcessHandle{1, 1}; }
  Result<std::optional<exec::ProcessHandle>> find_run(std::string_view, std::string_view) override {
    return std::optional<exec::ProcessHandle>();
  }
  Status notify_preempt(std::string_view, Timestamp) override { return Status::ok(); }
  Status kill(std::string_view) override { return Status::ok(); }
  std::vector<exec::Exit> poll() override { return {}; }
  Timestamp checked_until() const override { return Timestamp{std::numeric_limits<std::int64_t>::max()}; }
  bool adopt(std::string_view, const exec::ProcessHandle&, exec::Exit&) override { return false; }
  std::string job_dir(std::string_view) const override { return "/nonexistent"; }
};

// Keeps nothing: the fuzz clock never moves, so the inert jobs accrue none.
class NoUsage final : public ledger::UsageSink {
 public:
  Status record(std::span<const ledger::UsageEvent>) override { return Status::ok(); }
};

struct World {
  std::unique_ptr<store::Store> store;
  ManualClock clock;
  SeededRandom random{42};
  fleet::FleetSpec fleet = fleet::virtual_local_fleet();
  std::unique_ptr<auth::Authenticator> authenticator;
  InertExecutor executor;
  NoUsage usage;
  std::unique_ptr<compute::ComputeService> compute;
  std::unique_ptr<api::Services> services;
  std::unique_ptr<api::Router> router;
  std::string admin_key;
  std::string tenant_id;  // a customer tenant, with one key
  std::string key_id;

  World() {
    auto opened = store::Store::open({"sqlite::memory:"});
    CHECK(opened.is_ok()) << opened.status().to_string();
    store = std::move(*opened);
    admin_key = auth::generate_api_key(random).secret;
    std::string admin_tenant_id;
    CHECK(api::bootstrap_operator(*store, clock, random, admin_key, admin_tenant_id).is_ok());
    authenticator = std::make_unique<auth::Authenticator>(clock);
    authenticator->load(*store->all_tenants(), *store->all_keys());
    auto started = compute::ComputeService::start(*store, fleet, executor, usage, clock, {});
    CHECK(started.is_ok()) << started.status().to_string();
    compute = std::move(*started);
    services.reset(new api::Services{*store, *authenticator, clock, random, fleet, admin_tenant_id});
    services->compute = compute.get();
    services->ready = true;
    router = std::make_unique<api::Router>(*authenticator);
    api::add_all_routes(*router, *services);

    store::Tenant customer{make_id(kTenantIdPrefix, random), "customer", store::TenantKind::kExternal, clock.now()};
    auth::GeneratedKey customer_key = auth::generate_api_key(random);
    store::AuditRecord audit{0, "", clock.now(), "system", "system", "fuzz", "fuzz.setup", "", "{}"};
    store::ApiKey ck{make_id(kKeyIdPrefix, random), customer.id, "ci", store::kScopeCompute,
                     customer_key.lookup_prefix, customer_key.secret_sha256, clock.now(), {}, {}, {}};
    audit.id = make_id(kAuditIdPrefix, random);
    CHECK(store->create_tenant(customer, audit).is_ok());
    audit.id = make_id(kAuditIdPrefix, random);
    CHECK(store->create_key(ck, audit).is_ok());
    authenticator->put_tenant(customer);
    authenticator->put_key(ck);
    tenant_id = customer.id;
    key_id = ck.id;
  }

  // The input with the $T and $K placeholders replaced by real ids.
  std::string expand(std::string_view input) const {
    std::string out;
    out.reserve(input.size() + 64);
    for (std::size_t i = 0; i < input.size(); ++i) {
      if (input[i] == '$' && i + 1 < input.size() && (input[i + 1] == 'T' || input[i + 1] == 'K')) {
        out += input[i + 1] == 'T' ? tenant_id : key_id;
        ++i;
      } else {
        out += input[i];
      }
    }
    return out;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static World world;
  std::string expanded = world.expand(std::string_view(reinterpret_cast<const char*>(data), size));
  std::string_view input = expanded;
  std::size_t newline = input.find('\n');
  std::string_view line = input.substr(0, newline);
  std::string_view body = newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);
  std::size_t space = line.find(' ');
  if (space == std::string_view::npos) return 0;

  net::HttpRequest request;
  request.method = line.substr(0, space);
  request.target = line.substr(space + 1);
  std::size_t question = request.target.find('?');
  request.path = request.target.substr(0, question);
  request.query = question == std::string_view::npos ? std::string_view() : request.target.substr(question + 1);
  bool anonymous = !body.empty() && body.front() == '!';
  request.body = anonymous ? body.substr(1) : body;
  request.request_id = "req_fuzz";
  // Headers come from the transport; here only Authorization.
  struct AuthorizationOnly final : net::HeaderSource {
    std::string authorization;
    std::string_view get(std::string_view name) const override {
      return name == "authorization" ? std::string_view(authorization) : std::string_view();
    }
  } headers;
  if (!anonymous) headers.authorization = "Bearer " + world.admin_key;
  request.headers = &headers;

  net::HttpResponse response;
  world.router->handle(request, response);
  if (response.deferred) {
    // Answered by the compute thread after its commit.
    std::shared_ptr<net::DeferredResponse> later = response.deferred;
    std::optional<net::HttpResponse> done;
    for (int i = 0; i < 10'000 && !(done = later->take()); ++i) std::this_thread::sleep_for(std::chrono::microseconds(100));
    if (!done) {
      std::fprintf(stderr, "no answer for input: %.*s\n", static_cast<int>(input.size()), input.data());
      std::abort();
    }
    response = std::move(*done);
  }
  if (response.status >= 500) {
    std::fprintf(stderr, "5xx for input: %.*s\n-> %s\n", static_cast<int>(input.size()), input.data(),
                 response.body.c_str());
    std::abort();
  }
  if (response.content_type == "application/json") {
    boost::system::error_code ec;
    boost::json::parse(response.body, ec);
    if (ec) {
      std::fprintf(stderr, "invalid JSON answer: %s\n", response.body.c_str());
      std::abort();
    }
  }
  return 0;
}
