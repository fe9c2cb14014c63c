// Clearing: the spot market's rule for who gets a GPU type's surplus, and at
// what price. Pure and deterministic: the same bids, in any order, give the
// same winners, losers and price; no clock, no randomness, no I/O.
//
// ---- The rule (written down once; clear() implements exactly this) ---------
//
// One clearing sells one GPU type's spot supply (the GPUs spot may hold now)
// to the bids for that type. Each bid is a gang, all or nothing, with the
// most it pays per GPU-hour.
//
// 1. Rank. The bids are ranked by max_price_per_gpu_hour descending, then
//    priority ascending (the caller passes submission order, so earlier
//    first), then id ascending. Ids are unique, so this is a total order and
//    the input order never matters.
// 2. Floor. A bid below the floor loses. (Ranked by price, every such bid
//    comes after every bid at or above the floor.)
// 3. Winners. The winners are the longest prefix of the ranking, among the
//    bids at or above the floor, whose gangs together fit the supply. The
//    first bid that does not fit loses, and so does every bid after it, even
//    a smaller one that would fit the GPUs left: a higher bid never loses to
//    a lower one. The trade-off: those leftover GPUs stay unsold for this
//    interval rather than go to a lower bid. (Skipping ahead would sell more
//    GPUs now, but let a small low bid jump a large high one every interval.)
// 4. Price. One uniform price per GPU-hour for every winner: the higher of
//    the floor and the max_price_per_gpu_hour of the first loser in rank
//    order (which is the highest losing bid); with no losers, the floor.
//    Every winner's max_price_per_gpu_hour is >= the price, since it ranks
//    above the first loser and is at or above the floor. With no winners the
//    price is still computed the same way (what a winner would have had to
//    pay); nobody pays it.
//
// Winners and losers are reported in rank order; together they hold every
// bid's id exactly once.
//
// ---- Contract ---------------------------------------------------------------
//
// validate() checks an input from outside; clear() requires a valid input
// (it CHECKs only what protects capacity: sold <= supply). clear() reuses
// the capacity of `out`'s vectors and of the scratch, so a caller that keeps
// both between clearings allocates nothing in steady state (once they have
// grown to the largest clearing seen). The input's bids are only read and
// may be freed after clear() returns; `out` owns its ids.
//
// Thread-safety: clear() and validate() touch nothing but their arguments.
// Distinct (out, scratch) pairs may be used from distinct threads at once;
// one pair must not be shared by concurrent calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/money.h"
#include "common/status.h"
#include "market/market_limits.h"

namespace headroom::market {

struct Bid {
  std::uint64_t id = 0;          // the spot job's id; unique within a clearing
  std::uint32_t gpus = 0;        // its gang, all or nothing; >= 1
  Money max_price_per_gpu_hour;  // the most it pays; >= 0
  std::uint64_t priority = 0;    // ties in price: lower first (the caller passes submission order)
};

// One GPU type at one clearing.
struct ClearingInput {
  std::uint32_t supply_gpus = 0;  // GPUs spot may hold now (the sellable surplus)
  Money floor_per_gpu_hour;       // spot never sells below this; >= 0
  std::span<const Bid> bids;      // any order
};

struct Clearing {
  Money price_per_gpu_hour;            // the uniform clearing price (rule 4)
  std::uint32_t sold_gpus = 0;         // the winners' gangs together; <= supply_gpus
  std::vector<std::uint64_t> winners;  // bid ids, in rank order
  std::vector<std::uint64_t> losers;   // bid ids, in rank order
};

// clear()'s and validate()'s working memory. Keep one per clearing loop and
// pass it every time; its contents mean nothing between calls.
class ClearingScratch {
 public:
  // A bid as ranked: the rank key plus what the rule reads.
  struct Ranked {
    std::int64_t price_nanos = 0;
    std::uint64_t priority = 0;
    std::uint64_t id = 0;
    std::uint32_t gpus = 0;
  };
  // (id, input index) pairs, for validate()'s duplicate check.
  struct IdAt {
    std::uint64_t id = 0;
    std::uint32_t index = 0;
  };

  std::vector<Ranked> ranked;
  std::vector<IdAt> ids;
};

// Clears one GPU type by the rule above into `out` (its previous contents
// are replaced). Requires validate(input) to be ok.
void clear(const ClearingInput& input, Clearing& out, ClearingScratch& scratch);

// ok, or invalid_argument naming the first problem found, checked in this
// order: the number of bids (at most limits::kMarketClearingBids); the floor
// ("floor_per_gpu_hour: ..."); each bid in input order, its gpus then its
// price ("bids[3].gpus: must be >= 1"); then duplicate ids, naming the first
// bid in input order whose id an earlier bid has
// ("bids[5].id: 42 duplicates bids[2].id").
Status validate(const ClearingInput& input, ClearingScratch& scratch);
// The same with its own scratch (allocates; for callers off the hot path).
Status validate(const ClearingInput& input);

}  // namespace headroom::market
