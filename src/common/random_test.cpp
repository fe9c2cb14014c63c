#include "common/random.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace headroom {
namespace {

TEST(SeededRandom, IsSplitmix64) {
  // Reference outputs of splitmix64 (Vigna), read little-endian by next_u64.
  SeededRandom zero(0);
  EXPECT_EQ(zero.next_u64(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(zero.next_u64(), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(zero.next_u64(), 0x06c45d188009454fULL);
  SeededRandom answer(42);
  EXPECT_EQ(answer.next_u64(), 0xbdd732262feb6e95ULL);
}

TEST(SeededRandom, SameSeedSameSequence) {
  SeededRandom a(20261126), b(20261126);
  for (int i = 0; i < 1'000; ++i) ASSERT_EQ(a.next_u64(), b.next_u64()) << i;
  // fill() replays the same way, whatever the sizes asked for, given the same calls.
  SeededRandom c(99), d(99);
  for (std::size_t n : {0u, 1u, 7u, 8u, 9u, 64u, 3u}) {
    std::vector<std::uint8_t> x(n), y(n);
    c.fill(x);
    d.fill(y);
    EXPECT_EQ(x, y) << n;
  }
}

TEST(SeededRandom, DifferentSeedsDiffer) {
  SeededRandom a(1), b(2);
  int same = 0;
  for (int i = 0; i < 100; ++i) same += a.next_u64() == b.next_u64();
  EXPECT_EQ(same, 0);
}

TEST(SeededRandom, FillIsTheByteStreamOfNextU64) {
  SeededRandom a(5), b(5);
  std::array<std::uint8_t, 16> bytes;
  a.fill(bytes);
  std::uint64_t first = b.next_u64(), second = b.next_u64();
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(bytes[i], static_cast<std::uint8_t>(first >> (8 * i)));
    EXPECT_EQ(bytes[8 + i], static_cast<std::uint8_t>(second >> (8 * i)));
  }
}

TEST(SeededRandom, ThreadSafeNoValueLostOrRepeated) {
  constexpr int kThreads = 8, kEach = 2'000;
  SeededRandom shared(77);
  std::vector<std::vector<std::uint64_t>> drawn(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) drawn[t].push_back(shared.next_u64());
    });
  }
  for (auto& thread : threads) thread.join();
  std::multiset<std::uint64_t> got;
  for (auto& v : drawn) got.insert(v.begin(), v.end());
  SeededRandom serial(77);
  std::multiset<std::uint64_t> want;
  for (int i = 0; i < kThreads * kEach; ++i) want.insert(serial.next_u64());
  EXPECT_EQ(got, want);
}

TEST(SecureRandom, FillsAndDiffers) {
  SecureRandom random;
  std::array<std::uint8_t, 32> a{}, b{};
  random.fill(a);
  random.fill(b);
  EXPECT_NE(a, b);
  std::array<std::uint8_t, 0> none;
  random.fill(none);  // no-op, no crash
  std::set<std::uint64_t> seen;
  for (int i = 0; i < 1'000; ++i) seen.insert(random.next_u64());
  EXPECT_EQ(seen.size(), 1'000u);
}

// Bytes come from a per-thread buffer: across refills and threads, none is
// served twice, and a large request bypasses the buffer.
TEST(SecureRandom, NoBytesServedTwiceAcrossRefillsAndThreads) {
  SecureRandom random;
  std::vector<std::set<std::array<std::uint8_t, 12>>> seen(4);
  std::vector<std::thread> threads;
  for (auto& set : seen) {
    threads.emplace_back([&random, &set] {
      for (int i = 0; i < 5'000; ++i) {
        std::array<std::uint8_t, 12> id{};
        random.fill(id);
        set.insert(id);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::array<std::uint8_t, 12>> all;
  for (const auto& set : seen) all.insert(set.begin(), set.end());
  EXPECT_EQ(all.size(), 20'000u);
  std::array<std::uint8_t, 4096> large{}, zeros{};
  random.fill(large);
  EXPECT_NE(large, zeros);
}

// A forked child never serves the bytes its parent had buffered.
TEST(SecureRandom, AForkedChildDrawsOtherBytes) {
  SecureRandom random;
  std::array<std::uint8_t, 16> warm{};
  random.fill(warm);  // the parent's buffer now holds unserved bytes
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::array<std::uint8_t, 16> mine{};
    random.fill(mine);
    _exit(write(fds[1], mine.data(), mine.size()) == static_cast<ssize_t>(mine.size()) ? 0 : 1);
  }
  std::array<std::uint8_t, 16> parent{}, from_child{};
  random.fill(parent);
  ASSERT_EQ(read(fds[0], from_child.data(), from_child.size()), static_cast<ssize_t>(from_child.size()));
  int status = 0;
  waitpid(child, &status, 0);
  close(fds[0]);
  close(fds[1]);
  EXPECT_NE(parent, from_child);
}

}  // namespace
}  // namespace headroom
