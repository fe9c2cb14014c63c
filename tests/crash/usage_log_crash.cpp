// Issue 4's crash harness: a usage log written under load, killed with
// SIGKILL at random points, restarted each time, and checked after every
// kill: every acknowledged event is in the log exactly once, with its
// content intact, and no event is in it twice.
//
//   usage_log_crash [--cycles N] [--seed S] [--cycles-per-log K] [--max-kill-ms M] [--dir DIR]
//     defaults: 200 cycles (`make test`; --cycles 10000 offline), seed 1,
//     a fresh log every 25 cycles, kills within 100 ms of the fork or the open.
//
// One cycle:
//   1. The parent forks a child. The child opens the log (replaying it) and
//      runs 4 producer threads, each calling UsageLog::record_each() with
//      batches of 1 to 32 events: 60% new ids, 20% retries of earlier ids
//      (ids acknowledged or lost in earlier cycles, or never sent), 20% the
//      ids another producer is sending right now (concurrent writers of one
//      id). An event's content is a pure function of its number k, so every
//      retry is the same event. After record_each() returns ok for an event
//      the child writes (k, the log's durable end) to a pipe (one write of
//      at most PIPE_BUF bytes per batch, so a kill never tears a message).
//   2. The parent kills the child with SIGKILL at a random time between 0
//      and M ms after the fork (so some kills land in the replay, the
//      file's creation, the zero-fill, a write or a sync), then reads the
//      acknowledgements left in the pipe.
//   3. One cycle in four, the parent also plays a power loss: it garbles
//      the log past the largest durable end any child has reported (the
//      part a power loss may lose: truncated mid-record, random bytes, a
//      zeroed range), so that the replay meets torn and corrupt tails.
//   4. The parent replays the log with RecordLog (counting each event's
//      copies and checking their content), then with UsageLog (whose totals
//      must match), and checks every acknowledged event is there once.
// Any failure prints what differs and exits 1.
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "ledger/record_log.h"
#include "ledger/usage_log.h"

namespace {

using namespace headroom::ledger;
using headroom::Money;
using headroom::Status;
using headroom::Timestamp;
using SteadyClock = std::chrono::steady_clock;

constexpr int kProducers = 4;
constexpr std::size_t kMaxBatch = 32;

struct Ack {
  std::uint64_t k;
  std::uint64_t durable_end;
};
static_assert(kMaxBatch * sizeof(Ack) <= PIPE_BUF, "a batch's acknowledgements are one atomic pipe write");
constexpr std::uint64_t kReady = ~std::uint64_t{0};  // the child's first message: the log is open

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Event number k: the same content every time it is made.
UsageEvent event_of(std::uint64_t k) {
  std::uint64_t h = mix(k);
  UsageEvent e;
  e.id = "ev-" + std::to_string(k) + "-" + std::string(h % 24, static_cast<char>('a' + h % 26));
  e.tenant_id = "ten_" + std::to_string(k % 13);
  if (k % 3 == 0) {
    e.product = Product::kTokens;
    e.item = "llama-3-8b";
    e.variant = (h & 1) ? "input" : "output";
    e.quantity = static_cast<std::int64_t>(h % 100'000);
    e.unit_price = Money::from_nanos(50 + static_cast<std::int64_t>(h % 500));
    e.start = e.end = Timestamp{1'767'225'600'000'000 + static_cast<std::int64_t>(k)};
  } else {
    static const char* kTiers[] = {"internal", "reserved", "on-demand", "spot"};
    e.product = Product::kGpuTime;
    e.item = (h & 2) ? "h100" : "gb200";
    e.variant = kTiers[(h >> 8) % 4];
    e.quantity = static_cast<std::int64_t>(h % 3'600'000);
    e.unit_price = Money::from_nanos(static_cast<std::int64_t>(h % 4'000'000'000));
    e.start = Timestamp{1'767'225'600'000'000 + static_cast<std::int64_t>(k) * 1000};
    e.end = e.start.plus_micros(e.quantity * 1000);
  }
  e.source_id = "job_" + std::to_string(k / 10);
  return e;
}

bool same(const UsageEvent& a, const UsageEvent& b) {
  return a.id == b.id && a.tenant_id == b.tenant_id && a.product == b.product && a.item == b.item &&
         a.variant == b.variant && a.quantity == b.quantity && a.unit_price == b.unit_price && a.start == b.start &&
         a.end == b.end && a.source_id == b.source_id;
}

// k from an id "ev-<k>-...".
bool k_of(const std::string& id, std::uint64_t& k) {
  if (id.rfind("ev-", 0) != 0) return false;
  char* end = nullptr;
  k = std::strtoull(id.c_str() + 3, &end, 10);
  return end != nullptr && *end == '-';
}

[[noreturn]] void child_fail(const std::string& what) {
  std::fprintf(stderr, "child: %s\n", what.c_str());
  std::fflush(stderr);
  ::_exit(3);
}

// The child: writes until it is killed.
[[noreturn]] void run_child(const std::string& dir, std::uint64_t seed, std::uint64_t frontier, int ack_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  auto opened = UsageLog::open({.dir = dir});
  if (!opened) child_fail("open: " + opened.status().to_string());
  UsageLog& log = **opened;
  Ack ready{kReady, 0};
  if (::write(ack_fd, &ready, sizeof ready) != sizeof ready) child_fail("writing to the pipe");
  std::atomic<std::uint64_t> next_k{frontier};
  std::atomic<std::uint64_t> hot{frontier};  // a k some producer sent last
  std::vector<std::thread> threads;
  for (int t = 0; t < kProducers; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(mix(seed * 131 + static_cast<std::uint64_t>(t)));
      std::vector<UsageEvent> batch;
      std::vector<std::uint64_t> ks;
      Ack acks[kMaxBatch];
      while (true) {
        batch.clear();
        ks.clear();
        std::size_t n = 1 + rng() % kMaxBatch;
        for (std::size_t i = 0; i < n; ++i) {
          std::uint64_t roll = rng() % 10, k;
          if (roll < 6) {
            k = next_k.fetch_add(1);
            hot.store(k);
          } else if (roll < 8) {
            std::uint64_t sent = next_k.load();
            k = sent == 0 ? next_k.fetch_add(1) : rng() % sent;  // a retry
          } else {
            k = hot.load() + rng() % 3;  // racing another producer, or about to
            if (k >= next_k.load()) k = hot.load();
          }
          ks.push_back(k);
          batch.push_back(event_of(k));
        }
        std::vector<Status> statuses = log.record_each(batch);
        LogPosition durable = log.durable_end();
        for (std::size_t i = 0; i < n; ++i) {
          if (!statuses[i].is_ok()) child_fail("record " + batch[i].id + ": " + statuses[i].to_string());
          acks[i] = {ks[i], durable};
        }
        ssize_t bytes = static_cast<ssize_t>(n * sizeof(Ack));
        if (::write(ack_fd, acks, static_cast<std::size_t>(bytes)) != bytes) child_fail("writing to the pipe");
      }
    });
  }
  for (auto& th : threads) th.join();
  ::_exit(0);  // not reached
}

struct Stats {
  std::uint64_t acks = 0, acked_events = 0, kills_in_open = 0, kills_before_ack = 0, natural_cuts = 0, injected = 0,
                injected_cuts = 0;
  std::uint64_t max_log_bytes = 0, max_events = 0;
};

int fail(const std::string& what) {
  std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  return 1;
}

// Replays the log with RecordLog; fills `count` (copies per k), sums the
// quantities, and checks each event's content.
Status replay_raw(const std::string& dir, std::vector<std::uint32_t>& count, std::uint64_t& quantity,
                  ReplayReport& report) {
  quantity = 0;
  std::fill(count.begin(), count.end(), 0);
  auto log =
      RecordLog::open({.dir = dir, .file_name = "usage.log"}, [&](LogPosition position, std::string_view payload) {
        auto e = decode_usage_event(payload);
        std::uint64_t k;
        if (!e || !k_of(e->id, k))
          return Status::internal("not an event of this harness at " + std::to_string(position));
        if (!same(*e, event_of(k))) return Status::internal("event " + e->id + " changed on disk");
        if (k >= count.size()) count.resize(k + 1, 0);
        ++count[k];
        quantity += static_cast<std::uint64_t>(e->quantity);
        return Status::ok();
      });
  if (!log) return log.status();
  report = (*log)->replay_report();
  return Status::ok();
}

// Garbles the log past `durable` (what a power loss may lose). Returns false
// when there was nothing to garble. The replay that finds the log's end
// counts a tail the kill tore.
bool power_loss(const std::string& dir, LogPosition durable, std::mt19937_64& rng, Stats& stats) {
  std::string path = dir + "/usage.log";
  std::vector<std::uint32_t> ignored;
  std::uint64_t quantity;
  ReplayReport before;
  if (!replay_raw(dir, ignored, quantity, before).is_ok()) return false;
  stats.natural_cuts += before.tails_cut;
  if (before.end <= durable) return false;
  LogPosition at = durable + rng() % (before.end - durable);
  int fd = ::open(path.c_str(), O_WRONLY);
  if (fd < 0) return false;
  switch (rng() % 3) {
    case 0:  // a torn tail: the file ends inside a record
      if (::ftruncate(fd, static_cast<off_t>(at)) != 0) std::perror("ftruncate");
      break;
    case 1: {  // random bytes, as a sector half written
      std::string junk(1 + rng() % 64, '\0');
      for (char& c : junk) c = static_cast<char>(rng());
      if (::pwrite(fd, junk.data(), junk.size(), static_cast<off_t>(at)) < 0) std::perror("pwrite");
      break;
    }
    default: {  // a zeroed range, as a page never written
      std::string zeros(1 + rng() % 8192, '\0');
      if (::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(at)) < 0) std::perror("pwrite");
    }
  }
  ::close(fd);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t cycles = 200, seed = 1, cycles_per_log = 25, max_kill_ms = 100;
  std::string base;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto number = [&]() -> std::uint64_t {
      if (i + 1 >= argc) std::exit(2);
      return std::strtoull(argv[++i], nullptr, 10);
    };
    if (arg == "--cycles") {
      cycles = number();
    } else if (arg == "--seed") {
      seed = number();
    } else if (arg == "--cycles-per-log") {
      cycles_per_log = std::max<std::uint64_t>(1, number());
    } else if (arg == "--max-kill-ms") {
      max_kill_ms = std::max<std::uint64_t>(1, number());
    } else if (arg == "--dir" && i + 1 < argc) {
      base = argv[++i];
    } else {
      std::fprintf(
          stderr,
          "usage: usage_log_crash [--cycles N] [--seed S] [--cycles-per-log K] [--max-kill-ms M] [--dir DIR]\n");
      return 2;
    }
  }
  bool made_base = base.empty();
  if (made_base) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/usage_log_crash_XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    base = pattern;
  }
  spdlog::set_level(spdlog::level::err);  // a cut tail is expected here, every few cycles

  std::mt19937_64 rng(seed);
  Stats stats;
  auto started = SteadyClock::now();
  std::string dir;
  std::vector<std::uint8_t> acked;   // acked[k]: some child acknowledged event k in this log
  std::vector<std::uint32_t> count;  // copies of event k in the log
  std::uint64_t frontier = 0;        // every k below it may have been sent
  LogPosition durable = 0;           // the largest durable end a child reported for this log
  for (std::uint64_t cycle = 0; cycle < cycles; ++cycle) {
    if (cycle % cycles_per_log == 0) {
      if (!dir.empty()) std::filesystem::remove_all(dir);
      dir = base + "/log-" + std::to_string(cycle / cycles_per_log);
      acked.clear();
      count.clear();
      frontier = 0;
      durable = 0;
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return fail("pipe");
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) return fail("fork");
    if (pid == 0) {
      ::close(fds[0]);
      run_child(dir, mix(seed ^ (cycle * 0x100000001b3ULL)), frontier, fds[1]);
    }
    ::close(fds[1]);

    // Collect acknowledgements until the kill time, kill, then drain the
    // pipe. Half the kills count from the fork (they may land in the open:
    // the file's creation, the replay, the cut of a tail), half from the
    // moment the log is open (they land in the writes and syncs however long
    // the replay took).
    auto delay = std::chrono::microseconds(rng() % (max_kill_ms * 1000 + 1));
    bool from_open = rng() % 2 == 0;
    auto kill_at = SteadyClock::now() + delay;
    std::vector<char> buffer;
    bool killed = false, eof = false, opened = false;
    while (!eof) {
      if (from_open && !opened && buffer.size() >= sizeof(Ack)) {
        opened = true;
        kill_at = SteadyClock::now() + delay;
      }
      int timeout_ms = -1;
      if (from_open && !opened) {
        timeout_ms = 1000;  // waits for the child's first message (or its death)
      } else if (!killed) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(kill_at - SteadyClock::now()).count();
        if (left <= 0) {
          ::kill(pid, SIGKILL);
          killed = true;
        } else {
          timeout_ms = static_cast<int>(left);
        }
      }
      pollfd p{fds[0], POLLIN, 0};
      int ready = ::poll(&p, 1, killed ? -1 : timeout_ms);
      if (ready < 0 && errno != EINTR) return fail("poll");
      if (ready <= 0) continue;
      char chunk[8192];
      ssize_t n = ::read(fds[0], chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        eof = true;
        break;
      }
      buffer.insert(buffer.end(), chunk, chunk + n);
    }
    ::close(fds[0]);
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid) return fail("waitpid");
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
      return fail("cycle " + std::to_string(cycle) + ": the child ended by itself (status " + std::to_string(status) +
                  "), not by the kill");
    }
    if (buffer.size() % sizeof(Ack) != 0) return fail("a torn acknowledgement in the pipe");
    std::size_t n_acks = buffer.size() / sizeof(Ack);
    if (n_acks == 0) ++stats.kills_in_open;
    if (n_acks <= 1) ++stats.kills_before_ack;
    if (n_acks > 0 && std::memcmp(buffer.data(), &kReady, sizeof kReady) != 0) return fail("no ready message first");
    for (std::size_t i = 1; i < n_acks; ++i) {  // after the ready message
      Ack a;
      std::memcpy(&a, buffer.data() + i * sizeof(Ack), sizeof a);
      if (a.k == kReady) return fail("the ready message twice");
      if (a.k >= acked.size()) acked.resize(a.k + 1, 0);
      acked[a.k] = 1;
      durable = std::max(durable, a.durable_end);
      ++stats.acks;
    }

    // A power loss, one cycle in four: only what no child saw durable may go.
    bool injected = rng() % 4 == 0 && std::filesystem::exists(dir + "/usage.log") &&
                    power_loss(dir, std::max(durable, RecordLog::kFirstPosition), rng, stats);
    stats.injected += injected;

    // Check: each acknowledged event once, content intact, nothing twice.
    if (std::filesystem::exists(dir + "/usage.log"))
      stats.max_log_bytes =
          std::max<std::uint64_t>(stats.max_log_bytes, std::filesystem::file_size(dir + "/usage.log"));
    ReplayReport report;
    std::uint64_t quantity = 0, present = 0;
    if (Status s = replay_raw(dir, count, quantity, report); !s) {
      return fail("cycle " + std::to_string(cycle) + ": " + s.to_string());
    }
    if (report.tails_cut) (injected ? stats.injected_cuts : stats.natural_cuts) += 1;
    for (std::uint64_t k = 0; k < count.size(); ++k) {
      if (count[k] > 1) {
        return fail("cycle " + std::to_string(cycle) + ": event " + std::to_string(k) + " is in the log " +
                    std::to_string(count[k]) + " times");
      }
      present += count[k];
    }
    for (std::uint64_t k = 0; k < acked.size(); ++k) {
      if (acked[k] && (k >= count.size() || count[k] != 1)) {
        return fail("cycle " + std::to_string(cycle) + ": acknowledged event " + std::to_string(k) +
                    " is not in the log");
      }
    }
    {
      auto log = UsageLog::open({.dir = dir});
      if (!log) return fail("cycle " + std::to_string(cycle) + ": UsageLog::open: " + log.status().to_string());
      UsageTotals totals = (*log)->totals();
      if (totals.events != present || static_cast<std::uint64_t>(totals.quantity) != quantity) {
        return fail("cycle " + std::to_string(cycle) + ": UsageLog counts " + std::to_string(totals.events) +
                    " events, the replay " + std::to_string(present));
      }
    }
    frontier = std::max<std::uint64_t>(frontier, count.size());
    frontier = std::max<std::uint64_t>(frontier, acked.size());
    stats.max_events = std::max(stats.max_events, present);
    stats.acked_events = 0;
    for (std::uint8_t a : acked) stats.acked_events += a;
  }
  double seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();
  if (made_base) std::filesystem::remove_all(base);
  std::printf(
      "usage_log_crash: %llu cycles in %.1f s (seed %llu): every acknowledged event present exactly once after each "
      "SIGKILL\n  %llu acknowledgements; %llu kills in the open, %llu before an acknowledgement; torn tails cut: %llu "
      "after a kill, %llu after %llu "
      "injected power losses; largest log %.1f MiB, %llu events\n",
      static_cast<unsigned long long>(cycles), seconds, static_cast<unsigned long long>(seed),
      static_cast<unsigned long long>(stats.acks), static_cast<unsigned long long>(stats.kills_in_open),
      static_cast<unsigned long long>(stats.kills_before_ack), static_cast<unsigned long long>(stats.natural_cuts),
      static_cast<unsigned long long>(stats.injected_cuts), static_cast<unsigned long long>(stats.injected),
      static_cast<double>(stats.max_log_bytes) / (1 << 20), static_cast<unsigned long long>(stats.max_events));
  return 0;
}
