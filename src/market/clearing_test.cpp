#include "market/clearing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace headroom::market {
namespace {

Money usd(std::string_view text) { return Money::parse(text).value(); }

Bid bid(std::uint64_t id, std::uint32_t gpus, std::string_view max_price, std::uint64_t priority = 0) {
  return Bid{id, gpus, usd(max_price), priority};
}

Clearing run(std::uint32_t supply_gpus, std::string_view floor, const std::vector<Bid>& bids) {
  ClearingInput input{supply_gpus, usd(floor), bids};
  EXPECT_TRUE(validate(input).is_ok()) << validate(input).to_string();
  Clearing out;
  ClearingScratch scratch;
  clear(input, out, scratch);
  return out;
}

using Ids = std::vector<std::uint64_t>;

// ---- A plain reference, written from the rule's other reading ---------------
//
// Rank by pairwise comparison (no sort); a bid wins when it is at or above
// the floor and its gang plus every gang ranked above it fits the supply
// (cumulative gangs only grow down the ranking, so this is the longest
// prefix); the price is the floor or the highest losing bid, whichever is
// higher.

bool ref_ranks_before(const Bid& a, const Bid& b) {
  return std::tie(b.max_price_per_gpu_hour, a.priority, a.id) < std::tie(a.max_price_per_gpu_hour, b.priority, b.id);
}

Clearing reference(const ClearingInput& input) {
  const std::size_t n = input.bids.size();
  std::vector<std::size_t> rank(n, 0);
  std::vector<bool> wins(n, false);
  Clearing out;
  out.price_per_gpu_hour = input.floor_per_gpu_hour;
  for (std::size_t i = 0; i < n; ++i) {
    const Bid& b = input.bids[i];
    std::uint64_t gpus_through = b.gpus;
    for (std::size_t j = 0; j < n; ++j) {
      if (j != i && ref_ranks_before(input.bids[j], b)) {
        ++rank[i];
        gpus_through += input.bids[j].gpus;
      }
    }
    wins[i] = b.max_price_per_gpu_hour >= input.floor_per_gpu_hour && gpus_through <= input.supply_gpus;
    if (wins[i]) {
      out.sold_gpus += b.gpus;
    } else {
      out.price_per_gpu_hour = std::max(out.price_per_gpu_hour, b.max_price_per_gpu_hour);
    }
  }
  std::vector<std::uint64_t> by_rank(n);
  std::vector<bool> wins_by_rank(n);
  for (std::size_t i = 0; i < n; ++i) {
    by_rank[rank[i]] = input.bids[i].id;
    wins_by_rank[rank[i]] = wins[i];
  }
  for (std::size_t r = 0; r < n; ++r) (wins_by_rank[r] ? out.winners : out.losers).push_back(by_rank[r]);
  return out;
}

// ---- Random inputs with many ties --------------------------------------------

struct Case {
  std::uint32_t supply_gpus = 0;
  Money floor_per_gpu_hour;
  std::vector<Bid> bids;
};

Case random_case(std::mt19937_64& rng) {
  auto below = [&rng](std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); };
  Case c;
  c.supply_gpus = static_cast<std::uint32_t>(below(4) == 0 ? below(8) : below(300));
  // Prices on a coarse grid of quarter dollars, $0 to $5: ties are common,
  // and the floor often equals some bids' prices exactly.
  const std::int64_t quarter_nanos = Money::kNanosPerDollar / 4;
  c.floor_per_gpu_hour = Money::from_nanos(static_cast<std::int64_t>(below(4) == 0 ? 0 : below(12)) * quarter_nanos);
  const std::size_t n = below(5) == 0 ? below(4) : below(80);
  // Unique ids, not in rank order, with gaps.
  std::vector<std::uint64_t> ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = 1 + 3 * i + below(3);
  std::shuffle(ids.begin(), ids.end(), rng);
  const std::uint64_t price_levels = 1 + below(20);    // few levels: many ties in price
  const std::uint64_t priority_levels = 1 + below(6);  // few levels: ties decided by id
  for (std::size_t i = 0; i < n; ++i) {
    Bid b;
    b.id = ids[i];
    // Gangs 1..64 weighted to small: mostly 1-8, some up to 64.
    b.gpus = static_cast<std::uint32_t>(below(4) != 0 ? 1 + below(8) : 1 + below(64));
    b.max_price_per_gpu_hour = Money::from_nanos(static_cast<std::int64_t>(below(price_levels)) * quarter_nanos);
    b.priority = below(priority_levels);
    c.bids.push_back(b);
  }
  return c;
}

const Bid& find_bid(const std::vector<Bid>& bids, std::uint64_t id) {
  auto it = std::find_if(bids.begin(), bids.end(), [id](const Bid& b) { return b.id == id; });
  EXPECT_NE(it, bids.end()) << "id " << id << " not in the input";
  return *it;
}

// Checks every property of the rule on one clearing (the caller's
// SCOPED_TRACE names the seed and iteration of a failure).
void check_properties(const Case& c, const Clearing& out) {
  const ClearingInput input{c.supply_gpus, c.floor_per_gpu_hour, c.bids};

  // Never below the floor.
  EXPECT_GE(out.price_per_gpu_hour, c.floor_per_gpu_hour);

  // sold <= supply, and sold is the winners' gangs.
  EXPECT_LE(out.sold_gpus, c.supply_gpus);
  std::uint64_t winner_gpus = 0;
  for (std::uint64_t id : out.winners) winner_gpus += find_bid(c.bids, id).gpus;
  EXPECT_EQ(winner_gpus, out.sold_gpus);

  // Every winner pays at most its max (and the floor is respected by each).
  for (std::uint64_t id : out.winners) {
    EXPECT_LE(out.price_per_gpu_hour, find_bid(c.bids, id).max_price_per_gpu_hour) << "winner " << id;
  }

  // Winners and losers are each in rank order, and every winner ranks above
  // every loser: a higher-ranked bid never loses while a lower one wins.
  auto in_rank_order = [&c](const Ids& ids) {
    for (std::size_t i = 1; i < ids.size(); ++i) {
      if (!ref_ranks_before(find_bid(c.bids, ids[i - 1]), find_bid(c.bids, ids[i]))) return false;
    }
    return true;
  };
  EXPECT_TRUE(in_rank_order(out.winners));
  EXPECT_TRUE(in_rank_order(out.losers));
  if (!out.winners.empty() && !out.losers.empty()) {
    EXPECT_TRUE(ref_ranks_before(find_bid(c.bids, out.winners.back()), find_bid(c.bids, out.losers.front())));
  }

  // The price is the first loser's max or the floor, whichever is higher.
  if (out.losers.empty()) {
    EXPECT_EQ(out.price_per_gpu_hour, c.floor_per_gpu_hour);
  } else {
    const Bid& first_loser = find_bid(c.bids, out.losers.front());
    EXPECT_EQ(out.price_per_gpu_hour, std::max(c.floor_per_gpu_hour, first_loser.max_price_per_gpu_hour));
    // And it lost for a reason: below the floor, or its gang does not fit.
    EXPECT_TRUE(first_loser.max_price_per_gpu_hour < c.floor_per_gpu_hour ||
                std::uint64_t{out.sold_gpus} + first_loser.gpus > c.supply_gpus);
  }

  // Winners + losers is a permutation of the input ids.
  Ids all = out.winners;
  all.insert(all.end(), out.losers.begin(), out.losers.end());
  Ids input_ids;
  for (const Bid& b : c.bids) input_ids.push_back(b.id);
  std::sort(all.begin(), all.end());
  std::sort(input_ids.begin(), input_ids.end());
  EXPECT_EQ(all, input_ids);

  // And it agrees with the plain reference.
  const Clearing ref = reference(input);
  EXPECT_EQ(out.price_per_gpu_hour, ref.price_per_gpu_hour);
  EXPECT_EQ(out.sold_gpus, ref.sold_gpus);
  EXPECT_EQ(out.winners, ref.winners);
  EXPECT_EQ(out.losers, ref.losers);
}

TEST(ClearingProperties, HoldOnRandomInputs) {
  constexpr std::uint64_t kSeed = 20'260'101;
  constexpr int kIterations = 5'000;
  std::mt19937_64 rng(kSeed);
  Clearing out, shuffled_out;
  ClearingScratch scratch;  // one scratch and one out reused throughout, as a clearing loop would
  int with_winners_and_losers = 0;
  for (int i = 0; i < kIterations; ++i) {
    SCOPED_TRACE("seed " + std::to_string(kSeed) + " iteration " + std::to_string(i));
    Case c = random_case(rng);
    const ClearingInput input{c.supply_gpus, c.floor_per_gpu_hour, c.bids};
    ASSERT_TRUE(validate(input, scratch).is_ok());
    clear(input, out, scratch);
    check_properties(c, out);
    if (!out.winners.empty() && !out.losers.empty()) ++with_winners_and_losers;

    // Independent of the input order.
    for (int s = 0; s < 3; ++s) {
      std::vector<Bid> shuffled = c.bids;
      std::shuffle(shuffled.begin(), shuffled.end(), rng);
      clear({c.supply_gpus, c.floor_per_gpu_hour, shuffled}, shuffled_out, scratch);
      EXPECT_EQ(shuffled_out.price_per_gpu_hour, out.price_per_gpu_hour);
      EXPECT_EQ(shuffled_out.sold_gpus, out.sold_gpus);
      EXPECT_EQ(shuffled_out.winners, out.winners);
      EXPECT_EQ(shuffled_out.losers, out.losers);
    }
    if (testing::Test::HasFailure()) break;  // one failing case is enough to read
  }
  // The generator must exercise the boundary, not only all-win or all-lose.
  EXPECT_GT(with_winners_and_losers, kIterations / 4);
}

// ---- Hand-written cases ------------------------------------------------------

TEST(Clearing, NoBidsSellsNothingAtTheFloor) {
  Clearing out = run(100, "0.50", {});
  EXPECT_EQ(out.price_per_gpu_hour, usd("0.50"));
  EXPECT_EQ(out.sold_gpus, 0u);
  EXPECT_TRUE(out.winners.empty());
  EXPECT_TRUE(out.losers.empty());
}

TEST(Clearing, AllBelowTheFloorLoseAndThePriceIsTheFloor) {
  Clearing out = run(100, "1.00", {bid(1, 4, "0.99"), bid(2, 1, "0.50"), bid(3, 2, "0.99", /*priority=*/0)});
  EXPECT_EQ(out.price_per_gpu_hour, usd("1.00"));
  EXPECT_EQ(out.sold_gpus, 0u);
  EXPECT_TRUE(out.winners.empty());
  EXPECT_EQ(out.losers, (Ids{1, 3, 2}));  // rank order: 0.99 (id 1, id 3), then 0.50
}

TEST(Clearing, ABidExactlyAtTheFloorWins) {
  Clearing out = run(10, "1.00", {bid(1, 4, "1.00"), bid(2, 4, "0.999999999")});
  EXPECT_EQ(out.winners, (Ids{1}));
  EXPECT_EQ(out.losers, (Ids{2}));
  EXPECT_EQ(out.price_per_gpu_hour, usd("1.00"));  // the loser is below the floor
}

TEST(Clearing, ExactFitSellsEverythingAtTheFloor) {
  Clearing out = run(16, "0.40", {bid(1, 8, "2.00"), bid(2, 4, "1.50"), bid(3, 4, "0.40")});
  EXPECT_EQ(out.sold_gpus, 16u);
  EXPECT_EQ(out.winners, (Ids{1, 2, 3}));
  EXPECT_TRUE(out.losers.empty());
  EXPECT_EQ(out.price_per_gpu_hour, usd("0.40"));
}

TEST(Clearing, ThePriceIsTheFirstLosersBid) {
  Clearing out = run(10, "0.40", {bid(1, 8, "2.00"), bid(2, 4, "1.50"), bid(3, 1, "1.20"), bid(4, 1, "0.30")});
  EXPECT_EQ(out.winners, (Ids{1}));
  EXPECT_EQ(out.losers, (Ids{2, 3, 4}));
  EXPECT_EQ(out.price_per_gpu_hour, usd("1.50"));
  EXPECT_EQ(out.sold_gpus, 8u);
}

TEST(Clearing, ASmallerLowerBidDoesNotJumpTheFirstLoser) {
  // 2 GPUs are left after bid 1; bid 3 (1 GPU) would fit them, but bid 2
  // ranks above it and does not fit, so bid 3 loses too and 2 GPUs go unsold.
  Clearing out = run(10, "0.10", {bid(1, 8, "3.00"), bid(2, 4, "2.00"), bid(3, 1, "1.00")});
  EXPECT_EQ(out.winners, (Ids{1}));
  EXPECT_EQ(out.losers, (Ids{2, 3}));
  EXPECT_EQ(out.sold_gpus, 8u);
  EXPECT_EQ(out.price_per_gpu_hour, usd("2.00"));
}

TEST(Clearing, ATieAtTheBoundaryIsDecidedByPriorityThenId) {
  // Three bids at $1.00 for 4 GPUs each; 8 GPUs after bid 1's 4 leaves room for two.
  // Priority decides first: id 9 (priority 1) beats ids 5 and 7 (priority 2);
  // between those, the lower id (5) wins.
  std::vector<Bid> bids = {bid(1, 4, "3.00", 99), bid(7, 4, "1.00", 2), bid(9, 4, "1.00", 1), bid(5, 4, "1.00", 2)};
  Clearing out = run(12, "0.50", bids);
  EXPECT_EQ(out.winners, (Ids{1, 9, 5}));
  EXPECT_EQ(out.losers, (Ids{7}));
  EXPECT_EQ(out.price_per_gpu_hour, usd("1.00"));  // the loser's bid: winners at $1.00 pay all they offered
  EXPECT_EQ(out.sold_gpus, 12u);
}

TEST(Clearing, AGangLargerThanTheSupplyLosesAndBlocksThoseBelowIt) {
  Clearing out = run(64, "0.10", {bid(1, 65, "5.00"), bid(2, 8, "4.00")});
  EXPECT_TRUE(out.winners.empty());
  EXPECT_EQ(out.losers, (Ids{1, 2}));
  EXPECT_EQ(out.sold_gpus, 0u);
  EXPECT_EQ(out.price_per_gpu_hour, usd("5.00"));
}

TEST(Clearing, NoSupplySellsNothing) {
  Clearing out = run(0, "0.10", {bid(1, 1, "5.00")});
  EXPECT_TRUE(out.winners.empty());
  EXPECT_EQ(out.losers, (Ids{1}));
  EXPECT_EQ(out.sold_gpus, 0u);
}

TEST(Clearing, ReusesItsCapacityInSteadyState) {
  std::vector<Bid> bids;
  for (std::uint64_t i = 0; i < 1'000; ++i) {
    const Money price = Money::from_nanos(static_cast<std::int64_t>(i % 13) * 100'000'000);  // $0.00-$1.20
    bids.push_back(Bid{i + 1, 1 + static_cast<std::uint32_t>(i % 7), price, i});
  }
  const ClearingInput input{2'000, usd("0.20"), bids};
  Clearing out;
  ClearingScratch scratch;
  clear(input, out, scratch);
  ASSERT_FALSE(out.winners.empty());
  ASSERT_FALSE(out.losers.empty());
  const auto* winners_data = out.winners.data();
  const auto* losers_data = out.losers.data();
  const auto* ranked_data = scratch.ranked.data();
  const Clearing first = out;
  clear(input, out, scratch);
  EXPECT_EQ(out.winners.data(), winners_data);
  EXPECT_EQ(out.losers.data(), losers_data);
  EXPECT_EQ(scratch.ranked.data(), ranked_data);
  EXPECT_EQ(out.winners, first.winners);
  EXPECT_EQ(out.losers, first.losers);
  EXPECT_EQ(out.price_per_gpu_hour, first.price_per_gpu_hour);
}

// ---- validate() ----------------------------------------------------------------

Status validate_bids(const std::vector<Bid>& bids, Money floor = Money()) {
  return validate(ClearingInput{10, floor, bids});
}

TEST(ClearingValidate, AcceptsAGoodInput) {
  EXPECT_TRUE(validate_bids({bid(1, 1, "0"), bid(2, 100, "3.00")}).is_ok());
  EXPECT_TRUE(validate_bids({}).is_ok());
}

TEST(ClearingValidate, NamesAZeroGang) {
  Status s = validate_bids({bid(1, 1, "1.00"), bid(2, 1, "1.00"), bid(3, 1, "1.00"), bid(4, 0, "1.00")});
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "bids[3].gpus: must be >= 1");
}

TEST(ClearingValidate, NamesANegativePrice) {
  Status s = validate_bids({bid(1, 1, "1.00"), bid(2, 1, "-0.01")});
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "bids[1].max_price_per_gpu_hour: must be >= 0, got -0.01");
}

TEST(ClearingValidate, NamesTheFirstDuplicateInInputOrder) {
  // id 7 repeats at index 4, id 42 at index 3 (and again at 5): index 3 is named.
  Status s = validate_bids({bid(7, 1, "1.00"), bid(42, 1, "1.00"), bid(8, 1, "1.00"), bid(42, 1, "1.00"),
                            bid(7, 1, "1.00"), bid(42, 1, "1.00")});
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "bids[3].id: 42 duplicates bids[1].id");
}

TEST(ClearingValidate, NamesANegativeFloor) {
  Status s = validate_bids({bid(1, 1, "1.00")}, usd("-1.00"));
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "floor_per_gpu_hour: must be >= 0, got -1.00");
}

TEST(ClearingValidate, ChecksEachBidBeforeDuplicates) {
  Status s = validate_bids({bid(1, 1, "1.00"), bid(1, 1, "1.00"), bid(2, 0, "1.00")});
  EXPECT_EQ(s.message(), "bids[2].gpus: must be >= 1");
}

}  // namespace
}  // namespace headroom::market
