#include "api/metrics.h"

#include <fmt/format.h>

#include <map>
#include <unordered_map>

namespace headroom::api {
namespace {

std::atomic<std::uint64_t> next_metrics_id{1};

// Single-writer increment: the owning thread is the only writer.
void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1) {
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

}  // namespace

Metrics::Metrics(std::vector<std::string> routes) : route_names_(std::move(routes)), id_(next_metrics_id++) {}

Metrics::~Metrics() = default;

Metrics::Shard& Metrics::my_shard() {
  // Few Metrics exist (one per server); remember this thread's shard of each.
  thread_local std::unordered_map<std::uint64_t, Shard*> mine;
  auto it = mine.find(id_);
  if (it != mine.end()) return *it->second;
  std::lock_guard lock(shards_mutex_);
  shards_.push_back(std::make_unique<Shard>(route_names_.size()));
  mine[id_] = shards_.back().get();
  return *shards_.back();
}

void Metrics::record(std::size_t route, int status, std::int64_t latency_micros) {
  if (route >= route_names_.size()) return;
  Shard& shard = my_shard();
  RouteStats& stats = shard.routes[route];
  std::size_t used = stats.used.load(std::memory_order_acquire);
  Slot* slot = nullptr;
  for (std::size_t i = 0; i < used; ++i) {
    if (stats.slots[i].status.load(std::memory_order_relaxed) == status) {
      slot = &stats.slots[i];
      break;
    }
  }
  if (slot == nullptr) {
    std::lock_guard lock(shard.grow);
    if (used == kStatusesPerRoute) return;  // a route answering 16 distinct statuses: stop counting new ones
    slot = &stats.slots[used];
    slot->status.store(status, std::memory_order_relaxed);
    stats.used.store(used + 1, std::memory_order_release);
  }
  bump(slot->count);
  bump(slot->sum_micros, static_cast<std::uint64_t>(latency_micros < 0 ? 0 : latency_micros));
  for (std::size_t b = 0; b < kBucketMicros.size(); ++b) {
    if (latency_micros <= kBucketMicros[b]) {
      bump(slot->buckets[b]);
      break;
    }
  }
}

std::string Metrics::render(std::string_view extra) const {
  struct Totals {
    std::uint64_t count = 0, sum_micros = 0;
    std::array<std::uint64_t, kBucketMicros.size()> buckets{};
  };
  std::map<std::pair<std::size_t, int>, Totals> totals;
  {
    std::lock_guard lock(shards_mutex_);
    for (const auto& shard : shards_) {
      for (std::size_t r = 0; r < shard->routes.size(); ++r) {
        const RouteStats& stats = shard->routes[r];
        std::size_t used = stats.used.load(std::memory_order_acquire);
        for (std::size_t i = 0; i < used; ++i) {
          const Slot& slot = stats.slots[i];
          Totals& t = totals[{r, slot.status.load(std::memory_order_relaxed)}];
          t.count += slot.count.load(std::memory_order_relaxed);
          t.sum_micros += slot.sum_micros.load(std::memory_order_relaxed);
          for (std::size_t b = 0; b < kBucketMicros.size(); ++b) {
            t.buckets[b] += slot.buckets[b].load(std::memory_order_relaxed);
          }
        }
      }
    }
  }
  std::string out;
  out += "# HELP headroom_http_requests_total HTTP requests answered, by route and status.\n";
  out += "# TYPE headroom_http_requests_total counter\n";
  for (const auto& [key, t] : totals) {
    out += fmt::format("headroom_http_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", route_names_[key.first],
                       key.second, t.count);
  }
  out += "# HELP headroom_http_request_duration_seconds Time from a request's last byte read to its response.\n";
  out += "# TYPE headroom_http_request_duration_seconds histogram\n";
  for (const auto& [key, t] : totals) {
    std::string labels = fmt::format("route=\"{}\",status=\"{}\"", route_names_[key.first], key.second);
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < kBucketMicros.size(); ++b) {
      cumulative += t.buckets[b];
      out += fmt::format("headroom_http_request_duration_seconds_bucket{{{},le=\"{}\"}} {}\n", labels,
                         static_cast<double>(kBucketMicros[b]) / 1e6, cumulative);
    }
    out += fmt::format("headroom_http_request_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n", labels, t.count);
    out += fmt::format("headroom_http_request_duration_seconds_sum{{{}}} {}\n", labels,
                       static_cast<double>(t.sum_micros) / 1e6);
    out += fmt::format("headroom_http_request_duration_seconds_count{{{}}} {}\n", labels, t.count);
  }
  out += extra;
  return out;
}

}  // namespace headroom::api
