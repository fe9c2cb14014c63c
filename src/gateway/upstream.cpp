#include "gateway/upstream.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "net/http_client.h"

namespace headroom::gateway {

Result<std::shared_ptr<Upstream>> Upstream::create(std::vector<std::string> base_urls, std::string api_key,
                                                   UpstreamOptions options) {
  if (base_urls.empty()) return Status::invalid_argument("an upstream needs at least one base URL");
  auto upstream = std::shared_ptr<Upstream>(new Upstream());
  upstream->options_ = options;
  upstream->options_.max_in_flight = std::max<std::size_t>(1, options.max_in_flight);
  if (!api_key.empty()) upstream->authorization_ = "Bearer " + api_key;
  net::HttpClientOptions client_options;
  client_options.connect_timeout_ms = options.connect_timeout_ms;
  client_options.read_timeout_ms = options.idle_timeout_ms;
  client_options.stream_idle_timeout_ms = options.idle_timeout_ms;
  for (std::string& url : base_urls) {
    while (url.ends_with('/')) url.pop_back();
    // Checked now, so that a typo fails the start, not each request.
    HR_ASSIGN_OR_RETURN(std::shared_ptr<net::AsyncHttpClient> client,
                        net::AsyncHttpClient::create(url, client_options));
    auto replica = std::make_unique<Replica>();
    replica->base_url = std::move(url);
    replica->client = std::move(client);
    upstream->replicas_.push_back(std::move(replica));
  }
  upstream->health_ = std::thread([u = upstream.get()] { u->check_health(); });
  return upstream;
}

Upstream::~Upstream() { stop(); }

void Upstream::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  health_wake_.notify_all();
  if (health_.joinable()) health_.join();
}

void Upstream::enter(std::function<void(Turn)> start) {
  {
    std::lock_guard lock(mutex_);
    if (in_flight_ == options_.max_in_flight) {
      waiting_.push_back(std::move(start));
      return;
    }
    ++in_flight_;
  }
  start(Turn::kGo);
}

void Upstream::leave(Turn next) {
  std::function<void(Turn)> start;
  {
    std::lock_guard lock(mutex_);
    if (waiting_.empty()) {
      --in_flight_;
      return;
    }
    start = std::move(waiting_.front());  // takes the slot this one leaves
    waiting_.pop_front();
  }
  start(next);
}

std::vector<Upstream::Replica*> Upstream::order() {
  std::vector<Replica*> out;
  out.reserve(replicas_.size());
  for (auto& r : replicas_) out.push_back(r.get());
  std::stable_sort(out.begin(), out.end(), [](const Replica* a, const Replica* b) {
    const bool ha = a->healthy.load(), hb = b->healthy.load();
    if (ha != hb) return ha;
    return a->outstanding.load() < b->outstanding.load();
  });
  return out;
}

void Upstream::post(boost::asio::io_context& io, Replica& replica, net::AsyncHttpCall call) {
  call.method = "POST";
  call.headers = {{"Accept", "application/json, text/event-stream"}};
  if (!authorization_.empty()) call.headers.emplace_back("Authorization", authorization_);
  replica.client->start(io, std::move(call));
}

void Upstream::check_health() {
  std::map<const Replica*, net::HttpClient> clients;  // this thread's own
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    for (auto& replica : replicas_) {
      auto it = clients.find(replica.get());
      if (it == clients.end()) {
        net::HttpClientOptions options;
        options.connect_timeout_ms = options_.connect_timeout_ms;
        options.read_timeout_ms = options_.connect_timeout_ms;
        Result<net::HttpClient> client = net::HttpClient::create(replica->base_url, options);
        if (!client.is_ok()) continue;
        it = clients.emplace(replica.get(), std::move(*client)).first;
      }
      net::HttpHeaders headers;
      if (!authorization_.empty()) headers.emplace_back("Authorization", authorization_);
      Result<net::HttpClientResponse> answer = it->second.request("GET", "/models", {}, headers);
      const bool healthy = answer.is_ok() && answer->status == 200;
      if (healthy != replica->healthy.exchange(healthy)) {
        spdlog::warn("upstream {} is {}", replica->base_url, healthy ? "healthy again" : "unhealthy");
      }
    }
    lock.lock();
    health_wake_.wait_for(lock, std::chrono::milliseconds(options_.health_interval_ms), [&] { return stopping_; });
  }
}

}  // namespace headroom::gateway
