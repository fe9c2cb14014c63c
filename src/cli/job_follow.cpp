#include "cli/job_follow.h"

#include <algorithm>
#include <boost/json/value.hpp>
#include <limits>
#include <optional>
#include <ostream>

#include "cli/api_command.h"
#include "cli/output.h"

namespace headroom::cli {
namespace {

namespace json = boost::json;

// A string field of the job, safe to print; "" when missing or not a string.
std::string text_at(const json::value& job, std::string_view key) {
  const json::value* value = find_path(job, key);
  return value != nullptr && value->is_string() ? printable(value->get_string()) : std::string();
}

std::optional<std::int64_t> int_at(const json::value& job, std::string_view key) {
  const json::value* value = find_path(job, key);
  if (value == nullptr) return std::nullopt;
  if (value->is_int64()) return value->get_int64();
  if (value->is_uint64())
    return static_cast<std::int64_t>(
        std::min<std::uint64_t>(value->get_uint64(), std::numeric_limits<std::int64_t>::max()));
  return std::nullopt;
}

// " (reason)" when the reason says more than the state does.
std::string reason_note(const json::value& job, std::string_view state) {
  const std::string reason = text_at(job, "reason");
  if (reason.empty() || reason == "exited" || reason == state) return {};
  return " (" + reason + ")";
}

std::string message_note(const json::value& job) {
  const std::string message = text_at(job, "message");
  return message.empty() ? std::string() : ": " + message;
}

std::string job_target(std::string_view job_id) { return "/v1/jobs/" + encode_path_segment(job_id); }

// Writes the log from `offset` on to `out`, counting what it writes.
std::optional<ApiError> fetch_log(ApiSession& session, std::string_view job_id, std::uint64_t& offset,
                                  std::ostream& out) {
  const std::string target = job_target(job_id) + "/logs?offset=" + std::to_string(offset);
  return session.get_text(target, [&](std::string_view chunk) {
    out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    offset += chunk.size();
  });
}

// The state of one followed job between polls.
class Follower {
 public:
  Follower(ApiSession& session, std::string_view job_id, std::ostream& out, std::ostream& err)
      : session_(session), job_id_(job_id), out_(out), err_(err) {}

  // One round: the job, then its log since the last round, so that once
  // the job is seen ended the log that follows is whole.
  std::optional<ApiError> poll(json::value& job) {
    const ApiCall call{"GET", job_target(job_id_), std::nullopt};
    ApiAnswer answer;
    if (std::optional<ApiError> error = session_.call(call, answer)) return error;
    if (!answer.body.is_object()) {
      return ApiError{.message = "the server's answer to GET " + call.target + " is not a job"};
    }
    job = std::move(answer.body);
    std::optional<ApiError> error = fetch_log(session_, job_id_, log_offset_, out_);
    out_.flush();
    return error;
  }

  // Prints the job's progress line when it differs from the last one.
  void report(const json::value& job) {
    std::string line = progress_line(job);
    if (line == last_line_) return;
    err_ << line << "\n";
    last_line_ = std::move(line);
  }

 private:
  ApiSession& session_;
  std::string job_id_;
  std::ostream& out_;
  std::ostream& err_;
  std::uint64_t log_offset_ = 0;
  std::string last_line_;
};

int give_up(const ApiError& error, std::string_view job_id, std::ostream& err) {
  error.print(err);
  if (error.transient) {
    err << "hint: job " << job_id << " goes on without you: follow it again with `headroom jobs logs " << job_id
        << " --follow` once the server answers\n";
  }
  return static_cast<int>(error.exit_code);
}

}  // namespace

bool job_has_ended(const json::value& job) {
  const std::string state = text_at(job, "state");
  if (state == "succeeded" || state == "failed" || state == "cancelled" || state == "lost") return true;
  const json::value* ended_at = find_path(job, "ended_at");
  return state == "preempted" && ended_at != nullptr && ended_at->is_string();
}

std::string progress_line(const json::value& job) {
  const std::string state = text_at(job, "state");
  std::string line = "job " + text_at(job, "id") + " " + (state.empty() ? "in an unknown state" : state);
  if (state == "queued") {
    if (text_at(job, "reason") == "requeued") line += " again";
    if (const auto position = int_at(job, "queue_position")) line += " (position " + std::to_string(*position) + ")";
  } else if (state == "starting" || state == "running") {
    if (const std::string gpus = cell_text(find_path(job, "assigned_gpus")); gpus != "-") line += " on " + gpus;
  } else {
    line += reason_note(job, state);
  }
  return line + message_note(job);
}

std::string final_line(const json::value& job) {
  const std::string state = text_at(job, "state");
  std::string line = "job " + text_at(job, "id") + " " + state;
  if (state == "failed") {
    if (const auto code = int_at(job, "exit_code")) line += " with exit code " + std::to_string(*code);
  }
  if (state != "succeeded") line += reason_note(job, state);
  return line + message_note(job);
}

int exit_code_for_job(const json::value& job) {
  const std::string state = text_at(job, "state");
  if (state == "succeeded") return 0;
  if (state == "failed") {
    const auto code = int_at(job, "exit_code");
    if (code && *code >= 1) return static_cast<int>(std::min<std::int64_t>(*code, 255));
  }
  return 1;
}

std::string stop_following_text(std::string_view job_id) {
  const std::string id(job_id);
  return "stopped following job " + id + "; it goes on\n" + "  follow it again: headroom jobs logs " + id +
         " --follow\n" + "  cancel it:       headroom jobs cancel " + id + "\n";
}

int follow_job(ApiSession& session, std::string_view job_id, Waiter& waiter, std::ostream& out, std::ostream& err) {
  Follower follower(session, job_id, out, err);
  int failures = 0;
  while (!waiter.interrupted()) {
    json::value job;
    if (std::optional<ApiError> error = follower.poll(job)) {
      if (!error->transient || ++failures >= kJobPollFailuresMax) return give_up(*error, job_id, err);
      if (failures == 1) err << "warning: " << error->message << " (trying again)\n";
    } else {
      failures = 0;
      if (job_has_ended(job)) {
        err << final_line(job) << "\n";
        return exit_code_for_job(job);
      }
      follower.report(job);
    }
    if (!waiter.wait_ms(kJobPollMs)) break;
  }
  out.flush();
  err << stop_following_text(job_id);
  return kInterruptedExitCode;
}

int print_job_log(ApiSession& session, std::string_view job_id, std::uint64_t& offset, std::ostream& out,
                  std::ostream& err) {
  std::optional<ApiError> error = fetch_log(session, job_id, offset, out);
  out.flush();
  if (!error) return 0;
  error->print(err);
  return static_cast<int>(error->exit_code);
}

}  // namespace headroom::cli
