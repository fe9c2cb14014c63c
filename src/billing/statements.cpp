#include "billing/statements.h"

#include <algorithm>
#include <map>
#include <tuple>

namespace headroom::billing {

Result<GroupBy> parse_group_by(std::string_view text) {
  for (GroupBy g :
       {GroupBy::kDay, GroupBy::kProduct, GroupBy::kGpuType, GroupBy::kModel, GroupBy::kJob, GroupBy::kKey}) {
    if (group_by_name(g) == text) return g;
  }
  return Status::invalid_argument("group_by must be day, product, gpu_type, model, job or key, not \"" +
                                  std::string(text.substr(0, 32)) + "\"");
}

std::string_view group_by_name(GroupBy group_by) {
  switch (group_by) {
    case GroupBy::kDay: return "day";
    case GroupBy::kProduct: return "product";
    case GroupBy::kGpuType: return "gpu_type";
    case GroupBy::kModel: return "model";
    case GroupBy::kJob: return "job";
    case GroupBy::kKey: return "key";
  }
  return "day";
}

std::uint32_t Statements::intern(std::string_view text) {
  auto it = string_ids_.find(text);
  if (it != string_ids_.end()) return it->second;
  const auto id = static_cast<std::uint32_t>(strings_.size());
  const std::string& stored = strings_.emplace_back(text);
  string_ids_.emplace(stored, id);
  return id;
}

void Statements::add(const ledger::RatedCharge& c) {
  by_tenant_[c.tenant_id].push_back(Charge{.event_id = c.event_id,
                                           .item = intern(c.item),
                                           .variant = intern(c.variant),
                                           .source_id = intern(c.source_id),
                                           .key_id = intern(c.key_id),
                                           .product = c.product,
                                           .quantity = c.quantity,
                                           .unit_price = c.unit_price,
                                           .amount = c.amount,
                                           .start = c.start,
                                           .end = c.end});
  ++count_;
  total_ += c.amount;
}

namespace {

std::string day_of(Timestamp t) { return to_rfc3339(t).substr(0, 10); }  // "2026-11-26"

}  // namespace

UsageReport Statements::usage(std::string_view tenant_id, Timestamp from, Timestamp to, GroupBy group_by) const {
  UsageReport report;
  auto it = by_tenant_.find(std::string(tenant_id));
  if (it == by_tenant_.end()) return report;
  // Grouped by (group, product); a std::map keeps the rows in order.
  std::map<std::pair<std::string, ledger::Product>, UsageRow> rows;
  for (const Charge& c : it->second) {
    if (c.start < from || !(c.start < to)) continue;
    std::string group;
    switch (group_by) {
      case GroupBy::kDay: group = day_of(c.start); break;
      case GroupBy::kProduct: group = std::string(ledger::product_name(c.product)); break;
      case GroupBy::kGpuType:
        if (c.product != ledger::Product::kGpuTime) continue;
        group = text(c.item);
        break;
      case GroupBy::kModel:
        if (c.product != ledger::Product::kTokens) continue;
        group = text(c.item);
        break;
      case GroupBy::kJob: group = text(c.source_id); break;
      case GroupBy::kKey:  // model tokens only: GPU time is not made by a key
        if (c.product != ledger::Product::kTokens) continue;
        group = text(c.key_id);
        break;
    }
    UsageRow& row = rows[{group, c.product}];
    row.quantity += c.quantity;
    ++row.events;
    row.cost += c.amount;
    report.total += c.amount;
  }
  report.rows.reserve(rows.size());
  for (auto& [key, row] : rows) {
    row.group = key.first;
    row.product = key.second;
    report.rows.push_back(std::move(row));
  }
  return report;
}

std::vector<ChargeSummary> Statements::summary(Timestamp from, Timestamp to, std::int64_t bucket_us) const {
  using Key = std::tuple<std::string_view, ledger::Product, std::uint32_t, std::string_view, std::int64_t>;
  std::map<Key, ChargeSummary> sums;
  for (const auto& [tenant, charges] : by_tenant_) {
    for (const Charge& c : charges) {
      if (c.start < from || !(c.start < to)) continue;
      std::string_view tier = text(c.variant);
      if (ledger::is_block_price_variant(tier)) tier = "reserved";
      const std::int64_t bucket =
          bucket_us > 0 ? from.unix_micros + (c.start.unix_micros - from.unix_micros) / bucket_us * bucket_us
                        : from.unix_micros;
      ChargeSummary& sum = sums[Key{tenant, c.product, c.item, tier, bucket}];
      if (sum.tenant_id.empty()) {
        sum.tenant_id = tenant;
        sum.product = c.product;
        sum.item = text(c.item);
        sum.tier = tier;
        sum.bucket = Timestamp{bucket};
      }
      sum.quantity += c.quantity;
      sum.amount += c.amount;
    }
  }
  std::vector<ChargeSummary> out;
  out.reserve(sums.size());
  for (auto& [key, sum] : sums) out.push_back(std::move(sum));
  return out;
}

std::vector<std::int32_t> Statements::months(std::string_view tenant_id) const {
  std::vector<std::int32_t> out;
  auto it = by_tenant_.find(std::string(tenant_id));
  if (it == by_tenant_.end()) return out;
  for (const Charge& c : it->second) out.push_back(ledger::utc_month_of(c.start));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<ledger::RatedCharge> Statements::charges(std::string_view tenant_id, std::int32_t month) const {
  std::vector<ledger::RatedCharge> out;
  auto it = by_tenant_.find(std::string(tenant_id));
  if (it == by_tenant_.end()) return out;
  for (const Charge& c : it->second) {
    if (ledger::utc_month_of(c.start) != month) continue;
    ledger::RatedCharge r;
    r.event_id = c.event_id;
    r.tenant_id = std::string(tenant_id);
    r.product = c.product;
    r.item = text(c.item);
    r.variant = text(c.variant);
    r.quantity = c.quantity;
    r.unit_price = c.unit_price;
    r.amount = c.amount;
    r.start = c.start;
    r.end = c.end;
    r.source_id = text(c.source_id);
    r.key_id = text(c.key_id);
    r.source_unit_price = c.unit_price;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace headroom::billing
