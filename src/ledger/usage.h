// Usage events: what the ledger charges. A source (a job, a model request)
// makes each event's id itself, deterministically, so that sending it again
// after a crash or a retry is recognised as the same event and charged once.
//
// UsageSink is the ledger's front door for them. record() returns only once
// the events are durable; an event whose id is known is a no-op when its
// content is the same and a conflict when it differs.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "common/money.h"
#include "common/status.h"
#include "common/time.h"

namespace headroom::ledger {

enum class Product : std::uint8_t {
  kGpuTime,  // quantity in GPU-milliseconds; unit price per GPU-hour
  kTokens,   // quantity in tokens; unit price per million tokens
};

struct UsageEvent {
  std::string id;         // made by the source: "<job id>:<interval start, unix ms>" for GPU time
  std::string tenant_id;
  Product product = Product::kGpuTime;
  std::string item;       // gpu_time: the GPU type; tokens: the model
  std::string variant;    // gpu_time: the tier; tokens: "input" or "output"
  std::int64_t quantity = 0;
  Money unit_price;
  Timestamp start, end;   // the interval the usage covers, [start, end)
  std::string source_id;  // the job or request it came from
  std::string key_id;     // the API key that made the request (tokens); empty when none did
};

class UsageSink {
 public:
  virtual ~UsageSink() = default;
  virtual Status record(std::span<const UsageEvent> events) = 0;
  // record() for a caller that must not block (a server's I/O thread):
  // `done` gets what record() returns, once the events are durable, on
  // whichever thread finds them so. It must be quick. By default it runs
  // record() here.
  virtual void record_async(std::span<const UsageEvent> events, std::function<void(const Status&)> done) {
    done(record(events));
  }
};

}  // namespace headroom::ledger
