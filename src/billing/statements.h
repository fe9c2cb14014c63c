// Statements: every rated charge, kept compactly in memory per tenant, for
// usage reports (GET /v1/usage) and monthly invoices. Rebuilt at start from
// the usage log (what was rated), so it holds nothing the logs do not.
//
// A charge takes about 100 bytes with its event id (the other strings are
// interned: a GPU type, a model, a tier, a job id are stored once). Not thread-safe: the billing
// service guards it.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "ledger/ledger.h"
#include "ledger/rating.h"

namespace headroom::billing {

enum class GroupBy : std::uint8_t { kDay, kProduct, kGpuType, kModel, kJob, kKey };
Result<GroupBy> parse_group_by(std::string_view text);  // "day", "product", "gpu_type", "model", "job", "key"
std::string_view group_by_name(GroupBy group_by);

// One row of a usage report: the charges of one group and product.
struct UsageRow {
  std::string group;  // "2026-11-26", "gpu_time", "h100", "tiny-llama", "job_..."
  ledger::Product product = ledger::Product::kGpuTime;
  std::int64_t quantity = 0;  // GPU-ms or tokens
  std::uint64_t events = 0;
  ledger::Amount cost;  // exact
};

struct UsageReport {
  std::vector<UsageRow> rows;  // by group, then product
  ledger::Amount total;
};

// The charges of every tenant summed by tenant, product, item (GPU type or
// model), tier (GPU time: the event's tier, a capacity block's "block:<id>"
// counted as "reserved"; tokens: "input" or "output") and time bucket (the
// start of the charge's bucket), for the owner's reports.
struct ChargeSummary {
  std::string tenant_id;
  ledger::Product product = ledger::Product::kGpuTime;
  std::string item, tier;
  Timestamp bucket;
  std::int64_t quantity = 0;  // GPU-ms or tokens
  ledger::Amount amount;      // exact
};

class Statements {
 public:
  void add(const ledger::RatedCharge& charge);

  // The charges starting in [from, to), grouped. gpu_type counts GPU time
  // only, model tokens only.
  UsageReport usage(std::string_view tenant_id, Timestamp from, Timestamp to, GroupBy group_by) const;
  // Every tenant's charges starting in [from, to), summed as ChargeSummary
  // says, in buckets of bucket_us from `from` (0: one bucket).
  std::vector<ChargeSummary> summary(Timestamp from, Timestamp to, std::int64_t bucket_us) const;
  // The UTC months (yyyymm) in which the tenant's charges start, oldest first.
  std::vector<std::int32_t> months(std::string_view tenant_id) const;
  // The tenant's charges starting in the month, as rated.
  std::vector<ledger::RatedCharge> charges(std::string_view tenant_id, std::int32_t month) const;

  std::uint64_t count() const { return count_; }
  ledger::Amount total() const { return total_; }

 private:
  struct Charge {
    std::string event_id;
    std::uint32_t item, variant, source_id, key_id;  // interned
    ledger::Product product;
    std::int64_t quantity;
    Money unit_price;
    ledger::Amount amount;
    Timestamp start, end;
  };
  std::uint32_t intern(std::string_view text);
  const std::string& text(std::uint32_t id) const { return strings_[id]; }

  std::deque<std::string> strings_;  // a deque: its elements never move, so the views below stay valid
  std::unordered_map<std::string_view, std::uint32_t> string_ids_;
  std::unordered_map<std::string, std::vector<Charge>> by_tenant_;
  std::uint64_t count_ = 0;
  ledger::Amount total_;
};

}  // namespace headroom::billing
