// A process that competes for a leader lease, for the leader-failover test
// (tests/store/leader_lease_test.cpp) and benchmark
// (bench/leader_takeover_bench.cpp), which SIGKILL it.
//
//   leader_lease_holder URL KEY HOLDER [RETRY_INTERVAL_MS]
//
// Prints one line per event on stdout, flushed at once:
//   ready                       the lease is open (competing)
//   leader epoch=E elected_mono_us=T open_to_elected_us=D
//                               elected; T is steady_clock (CLOCK_MONOTONIC,
//                               the same in every process of the machine),
//                               D the time from open() to on_elected
//   lost                        leadership lost
//   error MESSAGE               open() failed (exit status 1)
// It exits when its stdin reaches end of file, so that it never outlives the
// test that started it.
#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/log.h"
#include "store/postgres/leader_lease.h"

namespace {

std::int64_t mono_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::fprintf(stderr, "usage: %s URL KEY HOLDER [RETRY_INTERVAL_MS]\n", argv[0]);
    return 2;
  }
  headroom::init_logging({.level = spdlog::level::warn});  // logs to stderr; stdout is the protocol
  headroom::store::LeaseOptions options;
  options.url = argv[1];
  options.key = std::strtoll(argv[2], nullptr, 10);
  options.holder = argv[3];
  if (argc == 5) options.retry_interval_ms = std::strtoll(argv[4], nullptr, 10);
  std::int64_t opened_us = mono_us();
  options.on_elected = [&opened_us](std::uint64_t epoch) {
    std::int64_t now = mono_us();
    std::printf("leader epoch=%llu elected_mono_us=%lld open_to_elected_us=%lld\n",
                static_cast<unsigned long long>(epoch), static_cast<long long>(now),
                static_cast<long long>(now - opened_us));
    std::fflush(stdout);
  };
  options.on_lost = [] {
    std::printf("lost\n");
    std::fflush(stdout);
  };
  auto lease = headroom::store::LeaderLease::open(std::move(options));
  if (!lease) {
    std::printf("error %s\n", lease.status().to_string().c_str());
    std::fflush(stdout);
    return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  char buffer[256];
  while (::read(STDIN_FILENO, buffer, sizeof buffer) > 0) {
  }
  (*lease)->stop();
  return 0;
}
