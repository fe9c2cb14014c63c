#include "market/clearing.h"

#include <algorithm>
#include <string>

#include "common/check.h"

namespace headroom::market {
namespace {

// Rule 1: price descending, then priority ascending, then id ascending.
bool ranks_before(const ClearingScratch::Ranked& a, const ClearingScratch::Ranked& b) {
  if (a.price_nanos != b.price_nanos) return a.price_nanos > b.price_nanos;
  if (a.priority != b.priority) return a.priority < b.priority;
  return a.id < b.id;
}

std::string bid_name(std::size_t index) { return "bids[" + std::to_string(index) + "]"; }

}  // namespace

void clear(const ClearingInput& input, Clearing& out, ClearingScratch& scratch) {
  ASSERT(input.bids.size() <= limits::kMarketClearingBids);
  ASSERT(input.floor_per_gpu_hour >= Money());

  std::vector<ClearingScratch::Ranked>& ranked = scratch.ranked;
  ranked.clear();
  ranked.reserve(input.bids.size());
  for (const Bid& bid : input.bids) {
    ASSERT(bid.gpus >= 1);
    ranked.push_back({bid.max_price_per_gpu_hour.nanos(), bid.priority, bid.id, bid.gpus});
  }
  // Rule 1. A total order (ids are unique), so std::sort's instability
  // cannot show and the result does not depend on the input order.
  std::sort(ranked.begin(), ranked.end(), ranks_before);

  // Rules 2 and 3: the winners are the longest prefix at or above the floor
  // that fits; the first bid that fails either test ends it.
  const std::int64_t floor_nanos = input.floor_per_gpu_hour.nanos();
  std::uint64_t sold_gpus = 0;  // 64 bits: no gang sum can overflow it
  std::size_t winners = 0;
  for (const ClearingScratch::Ranked& bid : ranked) {
    if (bid.price_nanos < floor_nanos || sold_gpus + bid.gpus > input.supply_gpus) break;
    sold_gpus += bid.gpus;
    ++winners;
  }
  CHECK(sold_gpus <= input.supply_gpus) << "clearing sold " << sold_gpus << " of " << input.supply_gpus << " GPUs";

  // Rule 4: the first loser in rank order holds the highest losing price.
  std::int64_t price_nanos = floor_nanos;
  if (winners < ranked.size()) price_nanos = std::max(price_nanos, ranked[winners].price_nanos);

  out.price_per_gpu_hour = Money::from_nanos(price_nanos);
  out.sold_gpus = static_cast<std::uint32_t>(sold_gpus);
  out.winners.clear();
  out.losers.clear();
  out.winners.reserve(winners);
  out.losers.reserve(ranked.size() - winners);
  for (std::size_t i = 0; i < winners; ++i) out.winners.push_back(ranked[i].id);
  for (std::size_t i = winners; i < ranked.size(); ++i) out.losers.push_back(ranked[i].id);
}

Status validate(const ClearingInput& input, ClearingScratch& scratch) {
  if (input.bids.size() > limits::kMarketClearingBids) {
    return Status::invalid_argument("bids: " + std::to_string(input.bids.size()) + " bids, at most " +
                                    std::to_string(limits::kMarketClearingBids) + " in one clearing");
  }
  if (input.floor_per_gpu_hour < Money()) {
    return Status::invalid_argument("floor_per_gpu_hour: must be >= 0, got " + input.floor_per_gpu_hour.to_string());
  }
  for (std::size_t i = 0; i < input.bids.size(); ++i) {
    const Bid& bid = input.bids[i];
    if (bid.gpus == 0) return Status::invalid_argument(bid_name(i) + ".gpus: must be >= 1");
    if (bid.max_price_per_gpu_hour < Money()) {
      return Status::invalid_argument(bid_name(i) + ".max_price_per_gpu_hour: must be >= 0, got " +
                                      bid.max_price_per_gpu_hour.to_string());
    }
  }

  // Duplicate ids: sort (id, index); within a run of one id the second entry
  // is the first bid (in input order) that repeats it. Name the earliest such
  // bid over all ids, so the message does not depend on the sort.
  std::vector<ClearingScratch::IdAt>& ids = scratch.ids;
  ids.clear();
  ids.reserve(input.bids.size());
  for (std::size_t i = 0; i < input.bids.size(); ++i) ids.push_back({input.bids[i].id, static_cast<std::uint32_t>(i)});
  std::sort(ids.begin(), ids.end(), [](const ClearingScratch::IdAt& a, const ClearingScratch::IdAt& b) {
    return a.id != b.id ? a.id < b.id : a.index < b.index;
  });
  const ClearingScratch::IdAt* first = nullptr;  // the earlier bid of the reported pair
  const ClearingScratch::IdAt* repeat = nullptr;
  for (std::size_t i = 1; i < ids.size(); ++i) {
    if (ids[i].id != ids[i - 1].id) continue;
    if (i >= 2 && ids[i - 2].id == ids[i].id) continue;  // a third or later copy: the second came first
    if (repeat == nullptr || ids[i].index < repeat->index) {
      first = &ids[i - 1];
      repeat = &ids[i];
    }
  }
  if (repeat != nullptr) {
    return Status::invalid_argument(bid_name(repeat->index) + ".id: " + std::to_string(repeat->id) + " duplicates " +
                                    bid_name(first->index) + ".id");
  }
  return Status::ok();
}

Status validate(const ClearingInput& input) {
  ClearingScratch scratch;
  return validate(input, scratch);
}

}  // namespace headroom::market
