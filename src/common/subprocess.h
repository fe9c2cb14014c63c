// Running a short-lived program the server asks something of (nvidia-smi,
// Slurm's commands) and capturing what it prints, bounded in time and bytes.
//
// The program starts with stdin on /dev/null, an empty signal mask and
// SIGPIPE at its default (the server blocks and ignores signals), in its own
// process group, so that a timeout kills all it started. Both pipes are read
// together, so a chatty stderr cannot block it. Past its time or its output
// bound it is killed (SIGKILL to the group); one that survives SIGKILL for a
// grace second (stuck in the kernel: a wedged driver) is left behind rather
// than hang the caller.
//
// Thread-safe: each call is independent. It blocks its caller for up to
// timeout_ms plus that grace second.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace headroom {

struct ProgramRun {
  std::string program;  // looked up in PATH when it has no '/'
  std::vector<std::string> args;
  // "KEY=value" entries; nullopt: the server's own environment.
  std::optional<std::vector<std::string>> env;
  std::int64_t timeout_ms = 10'000;
  std::size_t max_output_bytes = 1 << 20;  // per stream
};

struct ProgramResult {
  bool not_found = false;  // no such program: it never ran
  std::string spawn_error;  // why it could not start (not_found included); empty when it ran
  bool timed_out = false;
  bool too_large = false;   // it printed more than max_output_bytes on a stream
  // How it ended: its exit code, or the signal that killed it; neither when
  // its status was lost (the server ignores SIGCHLD) or it never ran.
  std::optional<int> exit_code;
  int signal = 0;
  std::string out, err;

  bool ran() const { return spawn_error.empty(); }
};

ProgramResult run_program(const ProgramRun& run);

}  // namespace headroom
