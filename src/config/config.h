// The config file of `headroom serve`: TOML, every key optional, every
// mistake an error.
//
//   [server]                       # where and how the platform listens
//   listen = "127.0.0.1:8080"
//   data_dir = "./headroom-data"
//   store = "postgres://headroom@db.internal/headroom"   # default: SQLite in data_dir
//   threads = 0                    # 0: one per hardware thread
//   tls_cert = "/etc/headroom/tls/cert.pem"   # both or neither
//   tls_key = "/etc/headroom/tls/key.pem"
//
//   [log]
//   format = "text"                # or "json"
//   level = "info"                 # trace, debug, info, warning, error, off
//
//   [[fleet.gpu_types]]            # absent [fleet]: detect the local GPUs
//   name = "h100"
//   memory_gib = 80
//
//   [[fleet.nodes]]                # 16 nodes, hgx-001 .. hgx-016
//   name = "hgx-{:03}"
//   count = 16
//   region = "us-east"
//   site = "iad1"
//   cluster = "iad1-a"
//   rack = { pattern = "iad1-r{:02}", every = 4 }   # 4 nodes a rack
//   gpu_type = "h100"
//   gpus = 8
//
// docs/config.md is the full schema; docs/headroom.example.toml a real fleet.
//
// Errors are invalid_argument (not_found for a missing file) with a message
// that starts "path:line:column: key.path: " so that the operator can go
// straight to the mistake. A key the schema does not know is an error, with
// the nearest known key suggested: a typo must never pass silently. No
// exception escapes these functions. They keep no state and are thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/log.h"
#include "common/money.h"
#include "common/status.h"
#include "fleet/fleet.h"
#include "market/calendar.h"
#include "market/economics.h"

namespace headroom::config {

// A listen address, split. The host is without brackets ("::1").
struct ListenAddress {
  std::string host;
  std::uint16_t port = 0;  // 0: any free port (tests)
};

// "127.0.0.1:8080", "0.0.0.0:443", "[::1]:8080", "[::]:0", "localhost:8080".
// The host is an IPv4 address, a bracketed IPv6 address or a host name, and
// may not be empty (write 0.0.0.0 to listen everywhere).
Result<ListenAddress> parse_listen_address(std::string_view text);

// A store URL as `store` and `headroom serve --store` take it: "sqlite:PATH",
// "postgres://..." or "postgresql://..." (store::Store::open checks the rest).
Status check_store_url(std::string_view url);
// The URL other servers reach this one at ("http://10.0.0.5:8080"): http or
// https, a host and port, no path.
Status check_advertise_url(std::string_view url);

// [compute]: how raw compute is run and priced.
//
//   [compute]
//   spot_grace_s = 30                # notice before a preempted spot job is killed
//   usage_interval_s = 60            # GPU time is emitted at least this often
//   internal_buffer = { h100 = 8 }   # GPUs per type kept free for internal surges
//   [compute.prices.h100]            # list prices per GPU-hour (until the market's catalog)
//   on_demand = "2.50"
//   reserved = "1.80"
//   spot = "0.90"
struct GpuPriceConfig {
  std::optional<Money> on_demand, reserved, spot;
};
struct ComputeConfig {
  std::int64_t spot_grace_s = 30;
  std::int64_t usage_interval_s = 60;
  std::map<std::string, std::uint32_t> internal_buffer;
  std::map<std::string, GpuPriceConfig> prices;
};

// [billing]: how the money side runs, and token prices until the market's
// catalog (GPU prices are [compute.prices]).
struct TokenPriceConfig {
  Money input, output;  // per million tokens
};
struct BillingConfig {
  std::int64_t job_hold_window_s = 3600;                // a paid run holds the cost of its first this-long
  std::map<std::string, TokenPriceConfig> token_prices;  // by model name
};

// [models.<name>]: hosted models served by the built-in engine. Without a
// [models] table the server deploys the built-in model "stories260K"
// (shipped inside the binary); with one, exactly the models it names.
//
//   [models.tinyllama]
//   file = "/srv/models/tinyllama-1.1b-chat.Q8_0.gguf"   # "builtin:stories260K": the shipped one
//   input_price = "0.05"       # per million tokens
//   output_price = "0.20"
//   threads = 8                # default: one per core
//   kv_cache_mb = 1024         # the paged KV cache (default 512)
//   context_tokens = 4096      # default: the model's
//   max_running = 32           # sequences batched together (default 64)
//
//   [models.llama-70b]          # served by external OpenAI-compatible servers
//   upstreams = ["http://10.0.0.5:8000/v1", "http://10.0.0.6:8000/v1"]
//   upstream_model = "meta-llama/Llama-3.1-70B-Instruct"   # its name there (default: the table's)
//   upstream_api_key_env = "VLLM_API_KEY"   # the environment variable holding their key
//   upstream_workers = 64      # requests in flight to them at most (the rest wait)
struct ModelConfig {
  std::string file;  // or upstreams
  std::vector<std::string> upstreams;
  std::string upstream_model;
  std::string upstream_api_key_env;
  std::uint32_t upstream_workers = 64;
  Money input_price, output_price;
  std::uint32_t threads = 0;
  std::uint32_t kv_cache_mb = 512;
  std::uint32_t context_tokens = 0;
  std::uint32_t max_running = 64;
};
inline constexpr std::string_view kBuiltinModelScheme = "builtin:";

// [gateway]: limits on the OpenAI API, per tenant (across its keys) and per
// key. 0 is no limit.
//
//   [gateway.tenant_limits]
//   requests_per_minute = 600
//   tokens_per_minute = 1000000
//   concurrent = 64
//   [gateway.key_limits]
//   requests_per_minute = 0
struct LimitsConfig {
  std::int64_t requests_per_minute = 0;
  std::int64_t tokens_per_minute = 0;
  std::int64_t concurrent = 0;
};
struct GatewayConfig {
  LimitsConfig tenant_limits{600, 1'000'000, 64};
  LimitsConfig key_limits;
};

// [market]: the owner's economics per GPU type, and how spot is priced.
//
//   [market]
//   clearing_interval_s = 60           # the spot market clears this often; 0: off
//   [[market.internal_forecast]]       # the owner's own demand, never sold as capacity blocks
//   gpu_type = "h100"
//   gpus = 512
//   from = "2026-12-01T00:00:00Z"
//   to = "2026-12-15T00:00:00Z"
//   [market.economics.h100]
//   purchase_price = "30000.00"        # one GPU, with its share of the server
//   in_service = "2025-06-01T00:00:00Z"
//   useful_life_years = 5
//   salvage_value = "3000.00"
//   depreciation = "straight_line"     # or "double_declining", "sum_of_years_digits"
//   power_watts = 700                  # one GPU at load, with its share of the host
//   pue = "1.30"
//   energy_price_per_kwh = "0.10"
//   other_cost_per_gpu_hour = "0.25"   # space, staff, network, support
//   spot_floor = "marginal"            # or "full_cost": spot never sells below it
//   on_demand_floor = "full_cost"      # list prices below it are refused ("none": no floor, the default)
//   reserved_floor = "marginal"
//   floor_utilization_percent = 60     # the utilization full cost is counted at
struct GpuEconomicsConfig {
  market::GpuEconomics economics;
  market::FloorPolicy spot_floor = market::FloorPolicy::kMarginal;
  // The list prices of these tiers may not be set below their floor (none: any price).
  std::optional<market::FloorPolicy> on_demand_floor, reserved_floor;
  std::int32_t floor_utilization_permille = 600;
};
struct MarketConfig {
  std::int64_t clearing_interval_s = 60;                // the spot market clears this often; 0: no market
  std::map<std::string, GpuEconomicsConfig> economics;  // by GPU type
  std::vector<market::ForecastEntry> internal_forecast;  // the owner's own demand: never sold as blocks
};

// [exec]: where jobs run (docs/slurm.md).
//
//   [exec]
//   kind = "slurm"                        # "local" (default): processes on this machine
//   jobs_dir = "/shared/headroom/jobs"    # job directories; required for slurm: a path every node mounts
//   slurm_conf = "/etc/slurm/slurm.conf"  # default: Slurm's own
//   slurm_bin_dir = "/usr/bin"            # where sbatch, squeue, scontrol, scancel are; default: PATH
//   partition = "gpu"                     # default: the cluster's default partition
//   gpu_memory_gib = { h100 = 80 }        # per GPU type, for the fleet read from Slurm
//
// With kind = "slurm" and no [fleet], the fleet is read from Slurm
// (scontrol show nodes): its GPU GRES types need their memory here.
struct ExecConfig {
  std::string kind = "local";  // "local" or "slurm"
  std::string jobs_dir;        // empty: DATA/jobs (local only)
  std::string slurm_conf;
  std::string slurm_bin_dir;
  std::string partition;
  std::map<std::string, std::int64_t> gpu_memory_gib;
};

struct ServeConfig {
  std::string listen = "127.0.0.1:8080";     // accepted by parse_listen_address
  // Where the other servers of a shared store forward to while this one
  // leads (check_advertise_url). Empty: made from `listen` (a wildcard host
  // becomes this machine's host name).
  std::string advertise_url;
  std::string data_dir = "./headroom-data";  // relative paths are relative to the working directory
  // The Store's URL (store::StoreOptions): "sqlite:PATH", "postgres://..." or
  // "postgresql://...". Empty: SQLite in data_dir/headroom.db.
  std::string store;
  std::uint32_t threads = 0;                 // 0: one per hardware thread, capped at limits::kServerThreads
  std::optional<std::string> tls_cert;       // PEM certificate chain; set exactly when tls_key is
  std::optional<std::string> tls_key;        // PEM private key
  LogOptions log;
  ComputeConfig compute;
  BillingConfig billing;
  GatewayConfig gateway;
  MarketConfig market;
  ExecConfig exec;
  // Absent: the built-in stories260K alone.
  std::optional<std::map<std::string, ModelConfig>> models;
  // The declared fleet, validated by fleet::validate (source "config"); absent:
  // the server runs fleet::detect_local_fleet().
  std::optional<fleet::FleetSpec> fleet;
  // Where this config came from: the file's path, the source name given to
  // parse_config, or "defaults" for a default-constructed one.
  std::string source = "defaults";
};

// Reads and parses the file at `path` (at most limits::kConfigFileBytes).
Result<ServeConfig> load_config_file(const std::string& path);

// Parses TOML text; `source_name` (a path, "<stdin>") is used in messages.
// An empty text gives the defaults.
Result<ServeConfig> parse_config(std::string_view toml_text, std::string_view source_name);

}  // namespace headroom::config
