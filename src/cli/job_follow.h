// Following a job as `headroom run` and `headroom jobs logs --follow` do:
// poll its state and its log until it ends, copy the log to stdout as it
// grows, tell each change of state on stderr, and end with the job's own
// exit code. Also the lines and the exit code, as pure functions of the
// API's Job object, so that tests check them without a server.
//
// Polling rather than the server's `?follow=true` stream: a poll is one
// short request, so a server restart or a dropped connection costs a
// retry, not the follow.
#pragma once

#include <boost/json/fwd.hpp>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>

namespace headroom::cli {

class ApiSession;
class Waiter;

// How often the job and its log are polled.
inline constexpr std::int64_t kJobPollMs = 500;
// Failed polls in a row (the server unreachable, 429, 5xx) before the follow
// gives up: a minute, enough for a server to restart.
inline constexpr int kJobPollFailuresMax = 120;
// The exit code when the user stops following with Ctrl-C (128 + SIGINT, as
// shells report it).
inline constexpr int kInterruptedExitCode = 130;

// Whether a job has ended: succeeded, failed, cancelled or lost, or
// preempted for good. (A job that is to be requeued may be seen preempted
// for a moment; it has no ended_at then.)
bool job_has_ended(const boost::json::value& job);

// The line that tells where a job that has not ended stands:
// "job job_1 queued (position 3)", "job job_1 running on node1:0,node1:1".
std::string progress_line(const boost::json::value& job);

// The line that tells how a job ended: "job job_1 succeeded",
// "job job_1 failed with exit code 3", "job job_1 lost: node n1 went down".
std::string final_line(const boost::json::value& job);

// The exit code that stands for how a job ended: 0 when it succeeded; its
// own exit code, clamped to 1..255, when it failed (1 when it has none);
// 1 when it was cancelled, preempted or lost.
int exit_code_for_job(const boost::json::value& job);

// What the user is told when they stop following: that the job goes on,
// and the commands to follow it again and to cancel it.
std::string stop_following_text(std::string_view job_id);

// Follows job `job_id` until it ends: writes its log to `out` as it grows,
// a progress line to `err` whenever the job's state or queue position
// changes, and the final line once it has ended. Returns
// exit_code_for_job(); kInterruptedExitCode when the user pressed Ctrl-C
// (after printing stop_following_text); or the CLI's exit code for an error
// that did not pass (a 4xx at once, other failures after
// kJobPollFailuresMax polls in a row). It runs as long as the job does,
// bounded by the job's own limits (its time in the queue is the server's
// to bound) and by Ctrl-C.
int follow_job(ApiSession& session, std::string_view job_id, Waiter& waiter, std::ostream& out, std::ostream& err);

// Writes the log of job `job_id` from byte `offset` to what exists now to
// `out`, and adds the bytes written to `offset`. An error is printed to
// `err` and its exit code returned; 0 otherwise.
int print_job_log(ApiSession& session, std::string_view job_id, std::uint64_t& offset, std::ostream& out,
                  std::ostream& err);

}  // namespace headroom::cli
