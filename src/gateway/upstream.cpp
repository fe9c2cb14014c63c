#include "gateway/upstream.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

namespace headroom::gateway {

Result<std::unique_ptr<Upstream>> Upstream::create(std::vector<std::string> base_urls, std::string api_key,
                                                   UpstreamOptions options) {
  if (base_urls.empty()) return Status::invalid_argument("an upstream needs at least one base URL");
  auto upstream = std::unique_ptr<Upstream>(new Upstream());
  upstream->options_ = options;
  if (!api_key.empty()) upstream->authorization_ = "Bearer " + api_key;
  for (std::string& url : base_urls) {
    while (url.ends_with('/')) url.pop_back();
    // Checked now, so that a typo fails the start, not each request.
    HR_RETURN_IF_ERROR(net::HttpClient::create(url).status());
    auto replica = std::make_unique<Replica>();
    replica->base_url = std::move(url);
    upstream->replicas_.push_back(std::move(replica));
  }
  for (std::size_t i = 0; i < std::max<std::size_t>(1, options.workers); ++i) {
    upstream->workers_.emplace_back([u = upstream.get()] { u->work(); });
  }
  upstream->health_ = std::thread([u = upstream.get()] { u->check_health(); });
  return upstream;
}

Upstream::~Upstream() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  health_wake_.notify_all();
  for (auto& worker : workers_) worker.join();
  health_.join();
}

void Upstream::run(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
}

void Upstream::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and nothing left
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    job();
    lock.lock();
  }
}

std::vector<Upstream::Replica*> Upstream::order() {
  std::vector<Replica*> out;
  for (auto& r : replicas_) out.push_back(r.get());
  std::stable_sort(out.begin(), out.end(), [](const Replica* a, const Replica* b) {
    const bool ha = a->healthy.load(), hb = b->healthy.load();
    if (ha != hb) return ha;
    return a->outstanding.load() < b->outstanding.load();
  });
  return out;
}

net::HttpClient* Upstream::client_for(const Replica& replica) {
  // One kept-alive connection per worker thread and replica.
  thread_local std::map<const Replica*, net::HttpClient> clients;
  auto it = clients.find(&replica);
  if (it == clients.end()) {
    net::HttpClientOptions options;
    options.connect_timeout_ms = options_.connect_timeout_ms;
    options.read_timeout_ms = options_.idle_timeout_ms;
    options.stream_idle_timeout_ms = options_.idle_timeout_ms;
    Result<net::HttpClient> client = net::HttpClient::create(replica.base_url, options);
    if (!client.is_ok()) return nullptr;
    it = clients.emplace(&replica, std::move(*client)).first;
  }
  return &it->second;
}

Status Upstream::post(Replica& replica, std::string_view target, std::string_view body,
                      const std::function<bool(std::string_view)>& on_chunk,
                      const std::function<void(const net::HttpClientResponse&)>& on_head) {
  net::HttpClient* client = client_for(replica);
  if (client == nullptr) return Status::unavailable("cannot make a client for " + replica.base_url);
  net::HttpHeaders headers = {{"Accept", "application/json, text/event-stream"}};
  if (!authorization_.empty()) headers.emplace_back("Authorization", authorization_);
  return client->request_stream("POST", target, body, headers, on_chunk, on_head);
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
