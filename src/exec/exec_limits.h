// Limits of the executors. They sit beside common/limits.h in the same
// namespace, so code reads limits::kExecLiveJobs the way it reads
// limits::kHttpBodyBytes. Every input the executor takes and every loop it
// runs is bounded by one of these.
#pragma once

#include <cstddef>
#include <cstdint>

namespace headroom::limits {

// A job id names a directory under the jobs root, so its length is bounded
// (public ids, "job_" and 21 base32 characters, use a fifth of it).
inline constexpr std::size_t kExecJobIdBytes = 128;
// A run id ("<seq>.<micros>", see LaunchSpec::run_id) is a word of a job's
// run file and of its Slurm comment.
inline constexpr std::size_t kExecRunIdBytes = 64;

// Jobs one executor runs at once (started or adopted). A node has at most a
// few dozen GPUs; the bound leaves room for CPU-only jobs and fractional use.
inline constexpr std::size_t kExecLiveJobs = 65'536;

// A job's command line and environment. Linux refuses an execve past about a
// quarter of the stack limit (2 MiB with the usual 8 MiB), so the total stays
// well under it and a job fails here, with a clear message, rather than there.
inline constexpr std::size_t kExecArgs = 4'096;
inline constexpr std::size_t kExecEnvVars = 1'024;
inline constexpr std::size_t kExecArgvEnvBytes = 1024 * 1024;  // all strings, terminators included

// How long start() waits for the job's command to be executed before it
// reports the job started anyway (a fork on a swapping machine can be slow).
inline constexpr std::int64_t kExecStartReportMs = 10'000;

// How often a supervisor touches its job's heartbeat file. A job whose
// supervisor vanished without an exit record (a reboot, a stray SIGKILL) is
// taken to have ended at the last heartbeat: it is billed at most this much
// too little, never for time after it died.
inline constexpr std::int64_t kExecHeartbeatMs = 10'000;

// Rounds of kill-and-reap a supervisor makes over what its job left behind
// when it ended; each round reaches one more generation. Past it, the
// supervisor SIGKILLs its whole group, itself included.
inline constexpr std::size_t kExecCleanupRounds = 1'024;

// Bytes read from /proc/<pid>/environ when checking whether a leftover
// process belongs to a job, and /proc entries looked at in one such search.
inline constexpr std::size_t kExecEnvironScanBytes = 256 * 1024;
inline constexpr std::size_t kExecProcScanEntries = 4'194'304;  // Linux's largest pid_max

// The Slurm executor's commands (sbatch, squeue, scontrol, scancel). Each
// blocks the compute service's thread, so each has a deadline; slurmctld
// answers in milliseconds, and its own MessageTimeout (10 s by default)
// bounds its retries, so a command past this one is hung.
inline constexpr std::int64_t kSlurmCommandTimeoutMs = 60'000;
// What one command may print: `scontrol show nodes --oneliner` takes about a
// kilobyte a node, so this covers tens of thousands of nodes.
inline constexpr std::size_t kSlurmCommandOutputBytes = 64 * 1024 * 1024;
// The least time between two squeue queries of poll(): the compute service
// polls on every turn of its loop, and slurmctld serves the whole cluster.
inline constexpr std::int64_t kSlurmPollIntervalMs = 1'000;
// Slurm job ids in one squeue query (its argument, ~9 bytes an id, stays far
// below the kernel's limit); more live jobs take several queries per poll.
inline constexpr std::size_t kSlurmJobIdsPerQuery = 10'000;

static_assert(kExecArgs + kExecEnvVars < kExecArgvEnvBytes / 8, "every string can hold a few bytes");
static_assert(kSlurmJobIdsPerQuery * 12 < kExecArgvEnvBytes, "one squeue query's job ids fit a command line");
static_assert(kExecJobIdBytes < 256, "a job directory's path stays far below PATH_MAX");
static_assert(kExecHeartbeatMs >= 1'000, "thousands of supervisors wake at most once a second each");

}  // namespace headroom::limits
