#include "common/subprocess.h"

#include <gtest/gtest.h>

#include <chrono>

namespace headroom {
namespace {

ProgramResult sh(const std::string& script, std::int64_t timeout_ms = 5'000, std::size_t max_output_bytes = 1 << 20) {
  return run_program({.program = "sh", .args = {"-c", script}, .timeout_ms = timeout_ms,
                      .max_output_bytes = max_output_bytes});
}

TEST(RunProgram, CapturesBothStreamsAndTheExitCode) {
  ProgramResult r = sh("echo out; echo err >&2; exit 3");
  EXPECT_TRUE(r.ran());
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_FALSE(r.timed_out);
}

TEST(RunProgram, ASignalIsNamedNotAnExitCode) {
  ProgramResult r = sh("kill -TERM $$");
  EXPECT_FALSE(r.exit_code.has_value());
  EXPECT_EQ(r.signal, 15);
}

TEST(RunProgram, AMissingProgramIsNotFound) {
  ProgramResult r = run_program({.program = "/nonexistent/headroom-no-such-tool"});
  EXPECT_TRUE(r.not_found);
  EXPECT_FALSE(r.ran());
  r = run_program({.program = "headroom-no-such-tool-on-path"});
  EXPECT_TRUE(r.not_found);
}

TEST(RunProgram, TheEnvironmentIsTheOneGiven) {
  ProgramResult r = run_program({.program = "/bin/sh",
                                 .args = {"-c", "echo \"[$A][$HOME]\""},
                                 .env = std::vector<std::string>{"A=1"}});
  EXPECT_EQ(r.out, "[1][]\n");
}

TEST(RunProgram, PastItsTimeItIsKilledWithWhatItStarted) {
  const auto start = std::chrono::steady_clock::now();
  ProgramResult r = sh("sleep 30 & echo started; wait", 300);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.out, "started\n");
  EXPECT_LT(took, std::chrono::seconds(5));
  // A program that closes its output but does not exit is killed at the deadline too.
  r = sh("exec >/dev/null 2>&1; sleep 30", 300);
  EXPECT_TRUE(r.timed_out);
}

TEST(RunProgram, PastItsOutputBoundItIsKilled) {
  ProgramResult r = sh("yes", 5'000, 64 * 1024);
  EXPECT_TRUE(r.too_large);
  EXPECT_FALSE(r.timed_out);
  EXPECT_GT(r.out.size(), 64u * 1024);
}

}  // namespace
}  // namespace headroom
