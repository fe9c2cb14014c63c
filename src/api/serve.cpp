#include "api/serve.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <map>
#include <thread>

#include "api/leader_forwarder.h"
#include "api/model_deployments.h"
#include "api/router.h"
#include "api/services.h"
#include "billing/billing_service.h"
#include "compute/compute_service.h"
#include "api/exec_setup.h"
#include "ledger/usage_log.h"
#include "auth/api_key.h"
#include "common/log.h"
#include "config/config.h"
#include "fleet/detect.h"
#include "gateway/builtin_model.h"
#include "gateway/model_service.h"
#include "net/server.h"
#include "store/postgres/leader_lease.h"
#include "store/postgres/postgres_store.h"

namespace headroom::api {
namespace {

struct ServeFlags {
  std::string config_path;
  std::string data_dir;
  std::string store;
  std::string listen;
  std::string advertise_url;
  std::uint32_t threads = 0;
  std::string tls_cert, tls_key;
  std::string log_format, log_level;
};

// Holds an exclusive lock on DATA/LOCK for the life of the process, so that
// two servers never share one data directory.
Result<int> lock_data_dir(const std::filesystem::path& dir) {
  std::string path = (dir / "LOCK").string();
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::unavailable("cannot open " + path + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return Status::conflict("another headroom serve is using " + dir.string() + " (" + path + " is locked)");
  }
  return fd;
}


// How to run this binary from the current directory ("build/release/headroom"),
// for the hint printed at first start.
std::string this_binary() {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "headroom";
  std::filesystem::path relative = exe.lexically_relative(std::filesystem::current_path(ec));
  if (ec || relative.empty() || *relative.begin() == "..") return exe.string();
  return relative.string();
}

std::string describe_fleet(const fleet::FleetSpec& fleet) {
  std::string out = std::to_string(fleet.nodes.size()) + (fleet.nodes.size() == 1 ? " node, " : " nodes, ") +
                    std::to_string(fleet::gpu_count(fleet)) + (fleet.is_virtual ? " virtual GPUs" : " GPUs");
  out += " (" + fleet.source + ")";
  if (fleet.is_virtual) out += ": no NVIDIA GPUs found, so jobs run on a virtual fleet";
  return out;
}

// The [compute] section, checked against the fleet.
Result<compute::ComputeOptions> compute_options_of(const config::ComputeConfig& config, const fleet::FleetSpec& fleet) {
  compute::ComputeOptions options;
  options.usage_interval_s = config.usage_interval_s;
  options.scheduler.grace_ms[static_cast<int>(sched::Tier::kSpot)] = config.spot_grace_s * 1000;
  for (const auto& [type, gpus] : config.internal_buffer) {
    if (!fleet::find_gpu_type(fleet, type)) {
      return Status::invalid_argument("compute.internal_buffer: the fleet has no GPU type " + fleet::quote_for_message(type));
    }
    options.scheduler.internal_buffer_gpus[type] = gpus;
  }
  for (const auto& [type, prices] : config.prices) {
    if (!fleet::find_gpu_type(fleet, type)) {
      return Status::invalid_argument("compute.prices: the fleet has no GPU type " + fleet::quote_for_message(type));
    }
    compute::GpuPrices& p = options.prices[type];
    if (prices.on_demand) p.on_demand = *prices.on_demand;
    if (prices.reserved) p.reserved = *prices.reserved;
    if (prices.spot) p.spot = *prices.spot;
  }
  return options;
}

// The prices the ledger rates by, until the market's catalog: every fleet
// GPU type in every tier ([compute.prices], internal work free) and the
// configured token prices.
std::vector<ledger::PriceEntry> price_list(const config::ServeConfig& config, const fleet::FleetSpec& fleet,
                                           const compute::ComputeOptions& compute,
                                           const std::vector<gateway::Deployment>& deployments) {
  std::vector<ledger::PriceEntry> out;
  for (const auto& type : fleet.gpu_types) {
    auto it = compute.prices.find(type.name);
    const compute::GpuPrices& p = it != compute.prices.end() ? it->second : compute.default_prices;
    for (auto [tier, price] : {std::pair{sched::Tier::kInternal, Money()}, std::pair{sched::Tier::kReserved, p.reserved},
                               std::pair{sched::Tier::kOnDemand, p.on_demand}, std::pair{sched::Tier::kSpot, p.spot}}) {
      out.push_back({ledger::Product::kGpuTime, type.name, std::string(sched::tier_name(tier)), {}, price});
    }
  }
  for (const auto& [model, p] : config.billing.token_prices) {
    out.push_back({ledger::Product::kTokens, model, "input", {}, p.input});
    out.push_back({ledger::Product::kTokens, model, "output", {}, p.output});
  }
  for (const gateway::Deployment& d : deployments) {
    out.push_back({ledger::Product::kTokens, d.name, "input", {}, d.input_price});
    out.push_back({ledger::Product::kTokens, d.name, "output", {}, d.output_price});
  }
  return out;
}

// The hosted models: those of [models], or the built-in one (written to
// DATA/models from the binary) when the config names none.
Result<std::vector<gateway::Deployment>> deployments_of(const config::ServeConfig& config,
                                                        const std::filesystem::path& data_dir) {
  std::map<std::string, config::ModelConfig> models;
  if (config.models) {
    models = *config.models;
  } else {
    config::ModelConfig builtin;
    builtin.file = std::string(config::kBuiltinModelScheme) + std::string(gateway::kBuiltinModelName);
    builtin.input_price = Money::from_nanos(50'000'000);    // $0.05 per million tokens
    builtin.output_price = Money::from_nanos(100'000'000);  // $0.10
    models[std::string(gateway::kBuiltinModelName)] = builtin;
  }
  std::vector<gateway::Deployment> out;
  for (const auto& [name, m] : models) {
    HR_ASSIGN_OR_RETURN(gateway::Deployment d, to_deployment(name, m, data_dir, "models." + name + "."));
    out.push_back(std::move(d));
  }
  return out;
}

// Everything that acts: the store, the ledger, raw compute, the hosted
// models, and the router over them. One process at a time holds one: at once
// on SQLite; on a shared PostgreSQL, the leader, once elected.
struct Platform {
  explicit Platform(const Clock& clock) : authenticator(clock) {}
  Platform(const Platform&) = delete;
  Platform& operator=(const Platform&) = delete;
  // The server that routed to it has stopped by now.
  ~Platform() {
    models.reset();   // meters what its engines were running
    compute.reset();  // jobs run on, adopted at the next start (or by the next leader)
    billing.reset();  // after compute, which holds and releases through it; rates what is recorded
  }

  std::unique_ptr<store::Store> store;
  std::string new_admin_key;  // the operator's key, made at first start: printed once
  fleet::FleetSpec fleet;
  auth::Authenticator authenticator;
  std::unique_ptr<exec::Executor> executor;
  std::unique_ptr<ledger::UsageLog> usage;
  std::unique_ptr<billing::BillingService> billing;
  std::unique_ptr<compute::ComputeService> compute;
  std::unique_ptr<gateway::ModelService> models;
  std::unique_ptr<Services> services;
  std::unique_ptr<Router> router;
};

Result<std::unique_ptr<Platform>> open_platform(const config::ServeConfig& config, const std::filesystem::path& data_dir,
                                                const Clock& clock, Random& random) {
  auto platform = std::make_unique<Platform>(clock);
  Platform& p = *platform;
  std::string store_url = config.store.empty() ? "sqlite:" + (data_dir / "headroom.db").string() : config.store;
  HR_ASSIGN_OR_RETURN(p.store, store::Store::open({store_url}));
  std::string admin_tenant_id;
  const char* env_key = std::getenv("HEADROOM_ADMIN_KEY");
  auto bootstrapped = bootstrap_operator(*p.store, clock, random, env_key ? env_key : "", admin_tenant_id);
  if (!bootstrapped && bootstrapped.status().code() == ErrorCode::kInvalidArgument) {
    return Status::invalid_argument("HEADROOM_ADMIN_KEY: " + bootstrapped.status().message());
  }
  HR_ASSIGN_OR_RETURN(p.new_admin_key, std::move(bootstrapped));

  if (config.fleet) {
    p.fleet = *config.fleet;
  } else {
    HR_ASSIGN_OR_RETURN(p.fleet, undeclared_fleet(config));  // Slurm's nodes with [exec] kind = "slurm"
  }
  const fleet::FleetSpec& fleet = p.fleet;
  HR_ASSIGN_OR_RETURN(auto tenants, p.store->all_tenants());
  HR_ASSIGN_OR_RETURN(auto keys, p.store->all_keys());
  p.authenticator.load(tenants, keys);

  // Raw compute: jobs run through the executor [exec] names (by default here,
  // as processes under DATA/jobs; or through Slurm).
  HR_ASSIGN_OR_RETURN(p.executor, make_executor(config.exec, (data_dir / "jobs").string(), clock));
  HR_ASSIGN_OR_RETURN(p.usage, ledger::UsageLog::open({(data_dir / "usage").string()}));
  if (const auto& replay = p.usage->replay_report(); replay.tails_cut > 0) {
    spdlog::warn("usage log: cut {} bytes of an invalid tail: {}", replay.bytes_cut, replay.reason);
  }
  HR_ASSIGN_OR_RETURN(compute::ComputeOptions compute_options, compute_options_of(config.compute, fleet));
  // The money: the ledger under DATA/ledger, rating the usage log.
  billing::BillingOptions billing_options;
  billing_options.dir = (data_dir / "ledger").string();
  HR_ASSIGN_OR_RETURN(std::vector<gateway::Deployment> deployments, deployments_of(config, data_dir));
  billing_options.prices = price_list(config, fleet, compute_options, deployments);
  billing_options.is_internal = [&authenticator = p.authenticator](std::string_view tenant_id) {
    return authenticator.tenant_kind(std::string(tenant_id)) == store::TenantKind::kInternal;
  };
  HR_ASSIGN_OR_RETURN(p.billing, billing::BillingService::open(billing_options, *p.usage, clock));
  compute_options.wallet = p.billing.get();
  compute_options.catalog = p.billing.get();
  compute_options.clearing_interval_s = config.market.clearing_interval_s;
  for (const market::ForecastEntry& f : config.market.internal_forecast) {
    if (!fleet::find_gpu_type(fleet, f.gpu_type)) {
      return Status::invalid_argument("market.internal_forecast: the fleet has no GPU type " +
                                      fleet::quote_for_message(f.gpu_type));
    }
  }
  compute_options.internal_forecast = config.market.internal_forecast;
  compute_options.spot_floor = [economics = config.market.economics](const std::string& gpu_type,
                                                                     Timestamp at) -> std::optional<Money> {
    auto it = economics.find(gpu_type);
    if (it == economics.end()) return std::nullopt;
    auto floor = market::price_floor(it->second.economics, it->second.spot_floor, at,
                                     it->second.floor_utilization_permille);
    return floor ? std::optional<Money>(*floor) : std::nullopt;
  };
  compute_options.hold_window_s = config.billing.job_hold_window_s;
  HR_ASSIGN_OR_RETURN(p.compute,
                      compute::ComputeService::start(*p.store, fleet, *p.executor, *p.usage, clock, compute_options));

  // Hosted models, metered into the usage log and checked against budgets.
  const auto limits = [](const config::LimitsConfig& l) {
    return gateway::RateLimits{l.requests_per_minute, l.tokens_per_minute, l.concurrent};
  };
  HR_ASSIGN_OR_RETURN(p.models,
                      gateway::ModelService::open(std::move(deployments),
                                                  {.usage = p.usage.get(),
                                                   .wallet = p.billing.get(),
                                                   .prices = p.billing.get(),
                                                   .clock = &clock,
                                                   .random = &random,
                                                   .tenant_limits = limits(config.gateway.tenant_limits),
                                                   .key_limits = limits(config.gateway.key_limits)}));
  redeploy_stored(*p.store, *p.models, *p.billing, clock, data_dir);

  for (const auto& [type, economics] : config.market.economics) {
    if (!fleet::find_gpu_type(fleet, type)) {
      return Status::invalid_argument("market.economics: the fleet has no GPU type " + fleet::quote_for_message(type));
    }
  }
  p.services = std::make_unique<Services>(*p.store, p.authenticator, clock, random, fleet, admin_tenant_id);
  Services& services = *p.services;
  services.data_dir = data_dir;
  services.models = p.models.get();
  services.compute = p.compute.get();
  services.billing = p.billing.get();
  services.usage = p.usage.get();
  services.economics = config.market.economics;
  p.router = std::make_unique<Router>(p.authenticator);
  add_all_routes(*p.router, services);
  services.ready.store(true);
  return platform;
}

// Answers with whichever handler is current: none while starting (503), the
// forwarder while this process follows, the platform's router once it leads.
// Never switched back: a leader that loses its lease exits (see serve()).
class SwitchHandler final : public net::HttpHandler {
 public:
  void switch_to(net::HttpHandler& next) { current_.store(&next, std::memory_order_release); }
  void handle(const net::HttpRequest& request, net::HttpResponse& response) override {
    if (net::HttpHandler* h = current_.load(std::memory_order_acquire)) return h->handle(request, response);
    write_error(response, Status::unavailable("starting: retry shortly"), request.request_id);
  }
  void handle_protocol_error(int status, std::string_view code, std::string_view message, std::string_view request_id,
                             net::HttpResponse& response) override {
    if (net::HttpHandler* h = current_.load(std::memory_order_acquire)) {
      return h->handle_protocol_error(status, code, message, request_id, response);
    }
    write_error(response, Status::unavailable("starting: retry shortly"), request_id);
  }

 private:
  std::atomic<net::HttpHandler*> current_{nullptr};
};

// The URL the other servers of a shared store forward to while this one leads.
// `configured` ([server] advertise_url) when set, else made from the listen
// address.
std::string advertised_url(const std::string& configured, const config::ListenAddress& listen, bool tls,
                           std::uint16_t port) {
  if (!configured.empty()) return configured;
  std::string host = listen.host;
  if (host == "0.0.0.0" || host == "::") {
    char name[256] = {};
    host = ::gethostname(name, sizeof name - 1) == 0 && name[0] != '\0' ? name : "localhost";
  }
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return std::string(tls ? "https" : "http") + "://" + host + ":" + std::to_string(port);
}

// Waits up to `timeout_ms` for one of the stop signals; 0 when none came.
int wait_for_stop_signal(const sigset_t& stop_signals, std::int64_t timeout_ms) {
  timespec timeout{static_cast<time_t>(timeout_ms / 1000), static_cast<long>(timeout_ms % 1000) * 1'000'000};
  int signal_number = sigtimedwait(&stop_signals, nullptr, &timeout);
  return signal_number > 0 ? signal_number : 0;
}

// Takes DATA/LOCK once the previous leader has let it go (at once when it
// died: the kernel drops its lock with it). Gives up when a stop signal comes
// (returning it in `signal_number`) or the lease is lost meanwhile.
Result<int> lock_data_dir_when_free(const std::filesystem::path& dir, const sigset_t& stop_signals,
                                    const store::LeaderLease& lease, int& signal_number) {
  for (bool logged = false;; logged = true) {
    auto fd = lock_data_dir(dir);
    if (fd.is_ok() || fd.status().code() != ErrorCode::kConflict) return fd;
    if (!logged) spdlog::warn("elected, waiting for the last leader to let go of {}", (dir / "LOCK").string());
    signal_number = wait_for_stop_signal(stop_signals, limits::kLeaderDataLockPollMs);
    if (signal_number != 0) return Status::unavailable("stopped while waiting for the data directory");
    if (!lease.is_leader()) return Status::unavailable("lost the leader lease while waiting for the data directory");
  }
}

// The operator's key made at first start (by whichever process first led),
// and how to use it; nothing on later starts.
void print_new_admin_key(const Platform& platform, const std::string& url) {
  if (platform.new_admin_key.empty()) return;
  std::printf("  admin key (shown once, keep it safe): %s\n", platform.new_admin_key.c_str());
  std::printf("  try:     HEADROOM_URL=%s HEADROOM_API_KEY=%s %s me\n", url.c_str(), platform.new_admin_key.c_str(),
              this_binary().c_str());
}

void print_banner(const config::ServeConfig& config, const Platform* platform, std::string_view role,
                  std::size_t threads, const std::string& url) {
  std::printf("headroom %s\n", HEADROOM_VERSION);
  if (config.store.empty()) {
    std::printf("  data:    %s (SQLite, schema v%d)\n", config.data_dir.c_str(), platform->store->schema_version());
  } else {
    std::printf("  data:    %s; store %s", config.data_dir.c_str(), store::redact_postgres_url(config.store).c_str());
    if (platform != nullptr) std::printf(" (schema v%d)", platform->store->schema_version());
    std::printf("\n");
  }
  if (!role.empty()) std::printf("  role:    %.*s\n", static_cast<int>(role.size()), role.data());
  if (platform != nullptr) {
    std::printf("  fleet:   %s\n", describe_fleet(platform->fleet).c_str());
    std::string model_names;
    for (const gateway::ModelInfo& m : platform->models->models()) {
      model_names += (model_names.empty() ? "" : ", ") + m.id;
    }
    std::printf("  models:  %s\n", model_names.empty() ? "none" : model_names.c_str());
  }
  std::printf("  threads: %zu\n", threads);
  if (platform != nullptr) print_new_admin_key(*platform, url);
}

Status serve(const ServeFlags& flags) {
  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  config::ServeConfig config;
  if (!flags.config_path.empty()) {
    HR_ASSIGN_OR_RETURN(config, config::load_config_file(flags.config_path));
  }
  if (!flags.data_dir.empty()) config.data_dir = flags.data_dir;
  if (!flags.store.empty()) {
    Status valid = config::check_store_url(flags.store);
    if (!valid) return Status::invalid_argument("--store: " + valid.message());
    config.store = flags.store;
  }
  if (!flags.listen.empty()) config.listen = flags.listen;
  if (!flags.advertise_url.empty()) {
    Status valid = config::check_advertise_url(flags.advertise_url);
    if (!valid) return Status::invalid_argument("--advertise-url: " + valid.message());
    config.advertise_url = flags.advertise_url;
  }
  if (flags.threads != 0) config.threads = flags.threads;
  if (!flags.tls_cert.empty()) config.tls_cert = flags.tls_cert;
  if (!flags.tls_key.empty()) config.tls_key = flags.tls_key;
  if (!flags.log_format.empty()) { HR_ASSIGN_OR_RETURN(config.log.format, parse_log_format(flags.log_format)); }
  if (!flags.log_level.empty()) { HR_ASSIGN_OR_RETURN(config.log.level, parse_log_level(flags.log_level)); }
  init_logging(config.log);
  HR_ASSIGN_OR_RETURN(config::ListenAddress listen, config::parse_listen_address(config.listen));

  std::error_code fs_error;
  std::filesystem::path data_dir(config.data_dir);
  std::filesystem::create_directories(data_dir, fs_error);
  if (fs_error) return Status::unavailable("cannot create data directory " + config.data_dir + ": " + fs_error.message());

  SystemClock clock;
  SecureRandom random;
  net::ServerOptions options;
  options.host = listen.host;
  options.port = listen.port;
  options.threads = config.threads != 0 ? config.threads : std::max(1u, std::thread::hardware_concurrency());
  options.tls_cert_path = config.tls_cert.value_or("");
  options.tls_key_path = config.tls_key.value_or("");
  const bool shared_store = store::is_postgres_url(config.store);

  // Declared so that they are destroyed in this order on every path: the
  // server first (nothing is routed any more), the lease last.
  std::unique_ptr<store::LeaderLease> lease;
  std::unique_ptr<Platform> platform;
  std::unique_ptr<LeaderForwarder> forwarder;
  std::unique_ptr<SwitchHandler> front;
  std::unique_ptr<net::HttpServer> server;
  std::string url;
  int signal_number = 0;
  if (!shared_store) {
    // One process, one data directory: it acts at once.
    HR_ASSIGN_OR_RETURN(int lock_fd, lock_data_dir(data_dir));
    (void)lock_fd;  // held until exit
    HR_ASSIGN_OR_RETURN(platform, open_platform(config, data_dir, clock, random));
    HR_ASSIGN_OR_RETURN(server, net::HttpServer::start(options, *platform->router));
    url = advertised_url("", listen, server->is_tls(), server->port());
    print_banner(config, platform.get(), "", options.threads, url);
  } else {
    // Several processes share the store and the data directory. Each serves
    // the API at once, forwarding to the leader; the one holding the lease
    // takes DATA/LOCK and opens the platform, and from then on answers itself.
    front = std::make_unique<SwitchHandler>();
    HR_ASSIGN_OR_RETURN(server, net::HttpServer::start(options, *front));
    url = advertised_url(config.advertise_url, listen, server->is_tls(), server->port());
    HR_ASSIGN_OR_RETURN(lease, store::LeaderLease::open({.url = config.store, .holder = url}));
    forwarder = std::make_unique<LeaderForwarder>(
        [&lease = *lease]() -> Result<std::optional<std::string>> {
          HR_ASSIGN_OR_RETURN(auto holder, lease.current_holder());
          if (!holder) return std::optional<std::string>();
          return std::optional<std::string>(holder->holder);
        },
        LeaderForwarder::Options{.self_url = url});
    front->switch_to(*forwarder);
    // Wait briefly for the first election, so that a lone server (or the
    // first of several) starts as the leader and prints what a leader prints.
    for (int waited = 0; !lease->is_leader() && waited < limits::kLeaderFirstElectionWaitMs; waited += 50) {
      if (auto holder = lease->current_holder(); holder.is_ok() && holder->has_value()) break;
      signal_number = wait_for_stop_signal(stop_signals, 50);
      if (signal_number != 0) break;
    }
  }

  // Becomes the leader: waits for the data directory, opens the platform and
  // routes to it. A failure to open it is fatal (as at a lone server's start).
  auto lead = [&]() -> Status {
    HR_ASSIGN_OR_RETURN(int lock_fd, lock_data_dir_when_free(data_dir, stop_signals, *lease, signal_number));
    (void)lock_fd;  // held until exit
    auto started = std::chrono::steady_clock::now();
    HR_ASSIGN_OR_RETURN(platform, open_platform(config, data_dir, clock, random));
    front->switch_to(*platform->router);
    spdlog::info("leader (epoch {}): the platform is open after {} ms; serving it on {}", lease->epoch(),
                 std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count(),
                 url);
    return Status::ok();
  };
  if (lease && lease->is_leader() && signal_number == 0) {
    Status led = lead();
    if (!led && signal_number == 0) return led;
  }
  if (lease) {
    std::string role = platform ? "leader (epoch " + std::to_string(lease->epoch()) + ")" : "follower: forwards to the leader";
    print_banner(config, platform.get(), role, options.threads, url);
  }
  // Last, so that a script may wait for this line: the server is ready.
  std::printf("listening on %s\n", url.c_str());
  std::fflush(stdout);
  spdlog::info("serving on {} with {} threads", url, options.threads);

  Status outcome = Status::ok();
  while (signal_number == 0) {
    signal_number = wait_for_stop_signal(stop_signals, lease ? limits::kLeaderPollMs : 1000);
    if (signal_number != 0 || !lease) continue;
    if (!platform && lease->is_leader()) {
      Status led = lead();
      if (!led && signal_number == 0) {
        outcome = led;
        break;
      }
      if (platform) {
        print_new_admin_key(*platform, url);
        std::fflush(stdout);
      }
    } else if (platform && !lease->is_leader()) {
      // Another process may be elected by now: stop acting at once, and let a
      // supervisor start this one again as a follower.
      outcome = Status::unavailable("lost the leader lease (the database connection failed): stopping");
      spdlog::error("{}", outcome.message());
      break;
    }
  }
  if (signal_number != 0) {
    spdlog::info("received {}: finishing in-flight requests", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  }
  if (platform) platform->services->ready.store(false);
  server->stop();
  if (forwarder) forwarder->stop();
  platform.reset();  // after the server: no request waits on it any more
  if (lease) lease->stop();  // after the platform: the next leader never overlaps with it
  spdlog::info("stopped");
  return outcome;
}

}  // namespace

void add_serve_command(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* serve_cmd = app.add_subcommand("serve", "Run the Headroom platform (API, scheduler, models) in this process");
  serve_cmd->footer(
      "With no options: data in ./headroom-data, listening on 127.0.0.1:8080, the local fleet.\n"
      "Example: headroom serve --listen 0.0.0.0:8080 --config headroom.toml");
  serve_cmd->add_option("--config", flags->config_path, "A headroom.toml declaring the fleet and settings")
      ->check(CLI::ExistingFile);
  serve_cmd->add_option("--data", flags->data_dir, "Data directory (default ./headroom-data)");
  serve_cmd->add_option("--store", flags->store,
                        "The store: postgres://USER@HOST/DB (shared) or sqlite:PATH (default: SQLite in the data directory)");
  serve_cmd->add_option("--listen", flags->listen, "HOST:PORT to listen on; port 0 picks a free one (default 127.0.0.1:8080)");
  serve_cmd->add_option("--advertise-url", flags->advertise_url,
                        "With a shared store: the URL the other servers reach this one at (default: from --listen)");
  serve_cmd->add_option("--threads", flags->threads, "I/O threads (default: one per core)")->check(CLI::Range(1, 64));
  serve_cmd->add_option("--tls-cert", flags->tls_cert, "PEM certificate chain: serve HTTPS")->check(CLI::ExistingFile);
  serve_cmd->add_option("--tls-key", flags->tls_key, "PEM private key for --tls-cert")->check(CLI::ExistingFile);
  serve_cmd->add_option("--log-format", flags->log_format, "text or json");
  serve_cmd->add_option("--log-level", flags->log_level, "trace, debug, info, warning, error or off");
  serve_cmd->callback([flags, &exit_code] {
    Status status = serve(*flags);
    if (!status) {
      std::fprintf(stderr, "headroom serve: %s\n", status.message().c_str());
      exit_code = 1;
    }
  });

  CLI::App* keygen = app.add_subcommand("keygen", "Print a new random API key, offline (for HEADROOM_ADMIN_KEY)");
  keygen->footer("Example: export HEADROOM_ADMIN_KEY=$(headroom keygen)");
  keygen->callback([] {
    SecureRandom random;
    std::printf("%s\n", auth::generate_api_key(random).secret.c_str());
  });
}

}  // namespace headroom::api
