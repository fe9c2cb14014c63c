// Issue 8's benchmark: the time for a new leader to take over after the old
// one is killed with SIGKILL (goal <= 5 s), beside the baseline in the same
// run: a fresh process taking a free lock (open -> elected).
//
//   leader_takeover_bench URL [ROUNDS]
//
// URL is a PostgreSQL server's ("scripts/test-postgres.sh start DIR" makes a
// throwaway one and writes it to DIR/url). Each round, on a key of its own:
// process A (leader_lease_holder, the default intervals of `headroom serve`)
// starts and is elected: its open -> elected is the baseline; process B starts
// and competes; A is killed with SIGKILL at a random phase of B's retry
// interval (as for a follower of long standing); the takeover is the time from
// the kill to B's on_elected (both read from CLOCK_MONOTONIC, which all processes
// of the machine share). Exits 1 when a takeover misses the goal or a round
// fails.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/limits.h"
#include "lease_holder_process.h"

namespace {

using headroom::testing::field;
using headroom::testing::HolderProcess;
using headroom::testing::mono_us;

struct Figures {
  double median_ms = 0, max_ms = 0;
};

Figures figures(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  std::size_t n = ms.size();
  return {n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2, ms.back()};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s URL [ROUNDS]\n", argv[0]);
    return 2;
  }
  const std::string url = argv[1];
  const int rounds = argc == 3 ? std::atoi(argv[2]) : 10;
  if (rounds < 1 || rounds > 1000) {
    std::fprintf(stderr, "ROUNDS must be 1..1000\n");
    return 2;
  }
  constexpr int kWaitMs = 3 * headroom::limits::kLeaderTakeoverGoalMs;
  // Keys of this run's own, so that a leftover holder of another run is no rival.
  const std::int64_t base_key = 0x6c62000000000000 + (mono_us() % 1'000'000) * 1000;
  std::vector<double> baseline_ms, takeover_ms;
  std::mt19937_64 random(8);  // a fixed seed: the same phases every run
  std::printf("leader takeover, %d rounds, retry interval %lld ms, check interval %lld ms\n", rounds,
              static_cast<long long>(headroom::limits::kLeaderRetryIntervalMs),
              static_cast<long long>(headroom::limits::kLeaderCheckIntervalMs));
  for (int round = 0; round < rounds; ++round) {
    std::int64_t key = base_key + round;
    auto a =
        HolderProcess::start(HEADROOM_LEADER_HOLDER, url, key, "bench-a", headroom::limits::kLeaderRetryIntervalMs);
    auto a_led = a ? a->wait_line("leader", kWaitMs) : std::nullopt;
    if (!a_led) {
      std::fprintf(stderr, "round %d: process A never led: %s\n", round, a ? a->transcript().c_str() : "no process");
      return 1;
    }
    baseline_ms.push_back(static_cast<double>(field(*a_led, "open_to_elected_us")) / 1000);
    auto b =
        HolderProcess::start(HEADROOM_LEADER_HOLDER, url, key, "bench-b", headroom::limits::kLeaderRetryIntervalMs);
    if (!b || !b->wait_line("ready", kWaitMs)) {
      std::fprintf(stderr, "round %d: process B did not open: %s\n", round, b ? b->transcript().c_str() : "");
      return 1;
    }
    // A follower of long standing tries at any phase of its retry interval
    // when the leader dies: kill at a random phase (after B's first try,
    // which it makes at once on opening).
    std::this_thread::sleep_for(
        std::chrono::microseconds(headroom::limits::kLeaderRetryIntervalMs * 1000 +
                                  random() % (headroom::limits::kLeaderRetryIntervalMs * 1000)));
    std::int64_t killed_us = mono_us();
    a->kill_hard();
    auto b_led = b->wait_line("leader", kWaitMs);
    if (!b_led) {
      std::fprintf(stderr, "round %d: process B never took over: %s\n", round, b->transcript().c_str());
      return 1;
    }
    takeover_ms.push_back(static_cast<double>(field(*b_led, "elected_mono_us") - killed_us) / 1000);
    std::printf("round %2d: free lock open->elected %7.1f ms, takeover after SIGKILL %7.1f ms (epoch %lld)\n", round,
                baseline_ms.back(), takeover_ms.back(), static_cast<long long>(field(*b_led, "epoch")));
  }
  Figures base = figures(baseline_ms), take = figures(takeover_ms);
  std::printf("baseline: a free lock, open -> elected:  median %7.1f ms, max %7.1f ms\n", base.median_ms, base.max_ms);
  std::printf("takeover: SIGKILL -> follower elected:   median %7.1f ms, max %7.1f ms (goal <= %lld ms): %s\n",
              take.median_ms, take.max_ms, static_cast<long long>(headroom::limits::kLeaderTakeoverGoalMs),
              take.max_ms <= static_cast<double>(headroom::limits::kLeaderTakeoverGoalMs) ? "met" : "MISSED");
  return take.max_ms <= static_cast<double>(headroom::limits::kLeaderTakeoverGoalMs) ? 0 : 1;
}
