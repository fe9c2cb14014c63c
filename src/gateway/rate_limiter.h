// RateLimiter: requests per minute, tokens per minute and concurrent
// requests, per tenant and per key, as OpenAI's API limits them.
//
// Each tenant and each key has a bucket of requests and one of tokens,
// holding up to a minute's worth and refilled continuously (a token bucket:
// a burst of a minute's allowance, then the steady rate). A request is
// admitted when both its tenant's and its key's buckets hold what it needs
// and neither is at its concurrency limit; it then takes one request and
// its reserved tokens (prompt plus the most it may generate) from each. When
// it ends, settle() gives back what it reserved and did not use, so a
// tenant pays its limit only for tokens it really spent.
//
// Refusals are rate_limited (HTTP 429) with a message naming the limit, and
// the seconds until the request would fit (RateState::retry_after_s). A
// request reserving more tokens than a whole minute's allowance can never
// fit: it is refused with that said, and no retry-after.
//
// The state reported (RateState) is the tighter of the tenant's and the
// key's, for OpenAI's x-ratelimit-* headers. A limit of 0 is no limit.
// Thread-safe; time comes from the Clock.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/status.h"
#include "common/time.h"

namespace headroom::gateway {

struct RateLimits {
  std::int64_t requests_per_minute = 0;  // 0: unlimited
  std::int64_t tokens_per_minute = 0;
  std::int64_t concurrent = 0;
};

// What the x-ratelimit-* headers say; -1 where unlimited.
struct RateState {
  std::int64_t limit_requests = -1, remaining_requests = -1;
  double reset_requests_s = 0;  // until the request bucket is full again
  std::int64_t limit_tokens = -1, remaining_tokens = -1;
  double reset_tokens_s = 0;
  double retry_after_s = 0;  // on a refusal that waiting cures
};

class RateLimiter {
 public:
  // What an admitted request holds: its concurrency slot and its reserved
  // tokens. Releases the slot when destroyed; settle() first to refund.
  class Ticket {
   public:
    ~Ticket();
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    // The request used `tokens` in all: the rest of the reservation goes
    // back to the buckets (never past a minute's worth), or what it used
    // beyond it is taken. Once; later calls do nothing.
    void settle(std::int64_t tokens);

   private:
    friend class RateLimiter;
    Ticket(RateLimiter* limiter, std::string tenant, std::string key, std::int64_t reserved)
        : limiter_(limiter), tenant_(std::move(tenant)), key_(std::move(key)), reserved_(reserved) {}
    RateLimiter* limiter_;
    std::string tenant_, key_;
    std::int64_t reserved_;
    bool settled_ = false;
  };

  RateLimiter(RateLimits per_tenant, RateLimits per_key, const Clock& clock)
      : tenant_limits_(per_tenant), key_limits_(per_key), clock_(clock) {}

  // Admits a request reserving `tokens`, or rate_limited. `state` is filled
  // either way. The limiter must outlive the ticket.
  Result<std::unique_ptr<Ticket>> admit(const std::string& tenant_id, const std::string& key_id, std::int64_t tokens,
                                        RateState& state);

 private:
  struct Bucket {
    double requests = 0, tokens = 0;  // available now
    std::int64_t refilled_us = 0;
    std::int64_t running = 0;
    bool fresh = true;
  };
  void refill(Bucket& b, const RateLimits& limits, std::int64_t now_us);
  void refund(const std::string& tenant, const std::string& key, std::int64_t tokens, bool release_slot);

  RateLimits tenant_limits_, key_limits_;
  const Clock& clock_;
  std::mutex mutex_;
  std::unordered_map<std::string, Bucket> tenants_, keys_;
};

// OpenAI's duration format for x-ratelimit-reset-*: "1s", "6m0s", "0.5s".
std::string format_reset(double seconds);

}  // namespace headroom::gateway
