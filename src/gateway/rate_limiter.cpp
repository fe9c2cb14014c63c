#include "gateway/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace headroom::gateway {
namespace {

constexpr double kMicrosPerMinute = 60e6;

// Seconds until `have` grows to `need` at `per_minute`.
double seconds_until(double have, double need, std::int64_t per_minute) {
  if (have >= need || per_minute <= 0) return 0;
  return (need - have) * 60.0 / static_cast<double>(per_minute);
}

}  // namespace

std::string format_reset(double seconds) {
  char text[48];
  if (seconds < 60) {
    std::snprintf(text, sizeof text, "%gs", std::ceil(seconds * 1000) / 1000);
  } else {
    const auto whole = static_cast<std::int64_t>(std::ceil(seconds));
    std::snprintf(text, sizeof text, "%lldm%llds", static_cast<long long>(whole / 60),
                  static_cast<long long>(whole % 60));
  }
  return text;
}

void RateLimiter::refill(Bucket& b, const RateLimits& limits, std::int64_t now_us) {
  if (b.fresh) {  // a new tenant or key starts with a full minute's allowance
    b.requests = static_cast<double>(limits.requests_per_minute);
    b.tokens = static_cast<double>(limits.tokens_per_minute);
    b.refilled_us = now_us;
    b.fresh = false;
    return;
  }
  const double elapsed = static_cast<double>(std::max<std::int64_t>(0, now_us - b.refilled_us)) / kMicrosPerMinute;
  b.requests = std::min<double>(limits.requests_per_minute, b.requests + elapsed * limits.requests_per_minute);
  b.tokens = std::min<double>(limits.tokens_per_minute, b.tokens + elapsed * limits.tokens_per_minute);
  b.refilled_us = now_us;
}

Result<std::unique_ptr<RateLimiter::Ticket>> RateLimiter::admit(const std::string& tenant_id,
                                                                const std::string& key_id, std::int64_t tokens,
                                                                RateState& state) {
  const std::int64_t now = clock_.now().unix_micros;
  std::lock_guard lock(mutex_);
  Bucket& t = tenants_[tenant_id];
  Bucket& k = keys_[key_id];
  refill(t, tenant_limits_, now);
  refill(k, key_limits_, now);

  // The tighter of the two, for the headers, and the first limit that refuses.
  state = RateState{};
  std::string refusal;
  bool hopeless = false;
  auto check = [&](const Bucket& b, const RateLimits& limits, const char* whose) {
    if (limits.requests_per_minute > 0) {
      const auto remaining = static_cast<std::int64_t>(std::floor(b.requests));
      if (state.limit_requests < 0 || remaining < state.remaining_requests) {
        state.limit_requests = limits.requests_per_minute;
        state.remaining_requests = remaining;
        state.reset_requests_s =
            seconds_until(b.requests, static_cast<double>(limits.requests_per_minute), limits.requests_per_minute);
      }
      if (b.requests < 1 && refusal.empty()) {
        refusal = std::string("Rate limit reached for requests per minute (") + whose + " limit " +
                  std::to_string(limits.requests_per_minute) + ")";
        state.retry_after_s = std::max(state.retry_after_s, seconds_until(b.requests, 1, limits.requests_per_minute));
      }
    }
    if (limits.tokens_per_minute > 0) {
      const auto remaining = static_cast<std::int64_t>(std::floor(b.tokens));
      if (state.limit_tokens < 0 || remaining < state.remaining_tokens) {
        state.limit_tokens = limits.tokens_per_minute;
        state.remaining_tokens = remaining;
        state.reset_tokens_s =
            seconds_until(b.tokens, static_cast<double>(limits.tokens_per_minute), limits.tokens_per_minute);
      }
      if (tokens > limits.tokens_per_minute && refusal.empty()) {
        refusal = "Request too large: it reserves " + std::to_string(tokens) +
                  " tokens (prompt and max_tokens), more than the " + whose + " limit of " +
                  std::to_string(limits.tokens_per_minute) + " tokens per minute; lower max_tokens";
        hopeless = true;
      } else if (b.tokens < static_cast<double>(tokens) && refusal.empty()) {
        refusal = std::string("Rate limit reached for tokens per minute (") + whose + " limit " +
                  std::to_string(limits.tokens_per_minute) + "): " + std::to_string(tokens) + " requested, " +
                  std::to_string(remaining) + " left";
        state.retry_after_s = std::max(state.retry_after_s,
                                       seconds_until(b.tokens, static_cast<double>(tokens), limits.tokens_per_minute));
      }
    }
    if (limits.concurrent > 0 && b.running >= limits.concurrent && refusal.empty()) {
      refusal = std::string("Too many concurrent requests (") + whose + " limit " + std::to_string(limits.concurrent) +
                ")";
      state.retry_after_s = std::max(state.retry_after_s, 1.0);
    }
  };
  check(t, tenant_limits_, "tenant");
  check(k, key_limits_, "key");
  if (!refusal.empty()) {
    if (hopeless) state.retry_after_s = 0;
    return Status::rate_limited(refusal);
  }
  for (auto [b, limits] : {std::pair{&t, &tenant_limits_}, std::pair{&k, &key_limits_}}) {
    if (limits->requests_per_minute > 0) b->requests -= 1;
    if (limits->tokens_per_minute > 0) b->tokens -= static_cast<double>(tokens);
    ++b->running;
  }
  if (state.remaining_requests > 0) --state.remaining_requests;
  if (state.remaining_tokens >= 0) state.remaining_tokens = std::max<std::int64_t>(0, state.remaining_tokens - tokens);
  return std::unique_ptr<Ticket>(new Ticket(this, tenant_id, key_id, tokens));
}

void RateLimiter::refund(const std::string& tenant, const std::string& key, std::int64_t tokens, bool release_slot) {
  const std::int64_t now = clock_.now().unix_micros;
  std::lock_guard lock(mutex_);
  for (auto [b, limits] : {std::pair{&tenants_[tenant], &tenant_limits_}, std::pair{&keys_[key], &key_limits_}}) {
    refill(*b, *limits, now);
    if (limits->tokens_per_minute > 0) {
      b->tokens = std::min<double>(static_cast<double>(limits->tokens_per_minute), b->tokens + tokens);
    }
    if (release_slot) --b->running;
  }
}

void RateLimiter::Ticket::settle(std::int64_t tokens) {
  if (settled_) return;
  settled_ = true;
  // Using more than it reserved (a request without max_tokens may) is
  // taken now: the bucket may go below zero and later requests wait.
  limiter_->refund(tenant_, key_, reserved_ - tokens, /*release_slot=*/false);
}

RateLimiter::Ticket::~Ticket() { limiter_->refund(tenant_, key_, 0, /*release_slot=*/true); }

}  // namespace headroom::gateway
