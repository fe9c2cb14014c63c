#include "cli/job_commands.h"

#include <CLI/CLI.hpp>
#include <boost/json/array.hpp>
#include <filesystem>
#include <ostream>

#include "cli/api_command.h"
#include "cli/job_follow.h"
#include "common/money.h"

namespace headroom::cli {
namespace {

namespace json = boost::json;

using Env = std::shared_ptr<const ClientEnvironment>;

const std::vector<std::string> kJobStates = {"queued",    "starting", "running",   "preempting", "preempted",
                                             "succeeded", "failed",   "cancelled", "lost"};

const std::vector<Column> kJobListColumns = {{"ID", "id"},
                                             {"STATE", "state"},
                                             {"TIER", "tier"},
                                             {"GPUS", "gpus", Align::kRight},
                                             {"GPU TYPE", "gpu_type"},
                                             {"CREATED", "created_at"},
                                             {"EXIT", "exit_code", Align::kRight}};

const std::vector<Column> kJobColumns = {{"ID", "id"},
                                         {"TENANT", "tenant_id"},
                                         {"STATE", "state"},
                                         {"REASON", "reason"},
                                         {"MESSAGE", "message"},
                                         {"EXIT CODE", "exit_code"},
                                         {"TIER", "tier"},
                                         {"GPUS", "gpus"},
                                         {"GPU TYPE", "gpu_type"},
                                         {"ASSIGNED GPUS", "assigned_gpus"},
                                         {"COMMAND", "command"},
                                         {"CREATED", "created_at"},
                                         {"STARTED", "started_at"},
                                         {"ENDED", "ended_at"},
                                         {"PREEMPTIONS", "preemptions"},
                                         {"QUEUE POSITION", "queue_position"}};

const std::vector<Column> kHistoryColumns = {
    {"AT", "at"}, {"STATE", "state"}, {"REASON", "reason"}, {"MESSAGE", "message"}};

// One argument as a shell would need it written: as it is when that is
// safe, else in single quotes.
std::string shell_word(std::string_view arg) {
  constexpr std::string_view kSafe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@%+,";
  if (!arg.empty() && arg.find_first_not_of(kSafe) == std::string_view::npos) return std::string(arg);
  std::string quoted = "'";
  for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// A job as one field a line (its command as a shell line), then its
// history when the answer has one.
std::string render_job(const json::value& answer) {
  json::value job = answer;
  if (json::object* object = job.if_object()) {
    if (const json::array* command = object->contains("command") ? object->at("command").if_array() : nullptr) {
      std::string line;
      for (const json::value& arg : *command) {
        if (!line.empty()) line += ' ';
        line += arg.is_string() ? shell_word(arg.get_string()) : cell_text(&arg);
      }
      (*object)["command"] = line;
    }
  }
  std::string text = render_record(kJobColumns, job);
  const json::value* history = find_path(answer, "history");
  if (history != nullptr && history->is_array() && !history->get_array().empty()) {
    text += "\nHISTORY\n" + render_list(kHistoryColumns, history->get_array());
  }
  return text;
}

Status add_tier(const RunArgs& args, json::object& body) {
  const bool spot = args.tier == "spot";
  const bool reserved = args.tier == "reserved";
  if (spot && args.max_price.empty()) {
    return Status::invalid_argument("--tier spot needs --max-price, the most you pay per GPU-hour (such as 1.50)");
  }
  if (!spot && !args.max_price.empty()) return Status::invalid_argument("--max-price is for --tier spot only");
  if (reserved && args.reservation_id.empty()) {
    return Status::invalid_argument("--tier reserved needs --reservation, the reservation (res_...) to run in");
  }
  if (!reserved && !args.reservation_id.empty()) {
    return Status::invalid_argument("--reservation is for --tier reserved only");
  }
  if (!args.max_price.empty()) {
    auto price = Money::parse(args.max_price);
    if (!price.is_ok() || price->nanos() <= 0) {
      return Status::invalid_argument("--max-price '" + args.max_price +
                                      "' is not an amount of dollars above zero, such as 1.50");
    }
    body["max_price_per_gpu_hour"] = args.max_price;
  }
  if (!args.tier.empty()) body["tier"] = args.tier;
  if (!args.reservation_id.empty()) body["reservation_id"] = args.reservation_id;
  return Status::ok();
}

Result<json::object> env_object(const std::vector<std::string>& vars) {
  json::object env;
  for (const std::string& var : vars) {
    const std::size_t equals = var.find('=');
    if (equals == 0 || equals == std::string::npos) {
      return Status::invalid_argument("--env wants NAME=VALUE, not '" + var + "'");
    }
    env[var.substr(0, equals)] = var.substr(equals + 1);
  }
  return env;
}

Result<std::string> absolute_workdir(const std::string& workdir,
                                     const std::function<Result<std::string>()>& current_dir) {
  std::filesystem::path path(workdir);
  if (!path.is_absolute()) {
    if (!current_dir) return Status::invalid_argument("cannot tell the current directory: pass --workdir /abs/path");
    HR_ASSIGN_OR_RETURN(const std::string cwd, current_dir());
    path = std::filesystem::path(cwd) / path;
  }
  std::string text = path.lexically_normal().string();
  if (text.size() > 1 && text.back() == '/') text.pop_back();
  return text;
}

int print_detached(const json::value& job, const std::string& id, OutputFormat format, std::ostream& out,
                   std::ostream& err) {
  if (format == OutputFormat::kJson) {
    out << pretty_json(job);
  } else {
    out << id << "\n";
  }
  out.flush();
  err << "job " << id << " submitted; follow it with `headroom jobs logs " << id << " --follow`\n";
  return 0;
}

int run_job(const RunArgs& args, const ClientFlags& flags, const ClientEnvironment& env) {
  std::ostream& err = *env.err;
  auto body = make_run_body(args, env.current_dir);
  Status key_ok = check_idempotency_key(args.idempotency_key);
  if (!body.is_ok() || !key_ok.is_ok()) {
    err << "error: " << (body.is_ok() ? key_ok : body.status()).message() << "\n";
    return static_cast<int>(ExitCode::kUsage);
  }
  std::unique_ptr<ApiSession> session;
  if (ExitCode code = ApiSession::open(flags, Auth::kRequired, env, session); code != ExitCode::kOk) {
    return static_cast<int>(code);
  }
  // Made before the job is sent, so that a Ctrl-C while it is on its way
  // still lets the user learn the job's id.
  std::unique_ptr<Waiter> waiter = env.make_waiter();
  const std::string key = args.idempotency_key.empty() ? env.new_idempotency_key() : args.idempotency_key;
  const ApiCall call{"POST", "/v1/jobs", json::value(std::move(*body))};
  ApiAnswer answer;
  if (std::optional<ApiError> error =
          call_with_idempotency_key(*session, call, key, "job", env, waiter.get(), answer)) {
    error->print(err);
    return static_cast<int>(error->exit_code);
  }
  const json::value* id_value = find_path(answer.body, "id");
  const std::string id = id_value != nullptr && id_value->is_string() ? printable(id_value->get_string()) : "";
  if (id.empty()) {
    err << "error: the server's answer to POST /v1/jobs has no job id\n";
    return static_cast<int>(ExitCode::kServerError);
  }
  if (answer.status == 200) {
    err << "note: a job was submitted with Idempotency-Key " << key << " before: this is that job, " << id << "\n";
  }
  if (args.detach) return print_detached(answer.body, id, session->settings().output, *env.out, err);
  return follow_job(*session, id, *waiter, *env.out, err);
}

void add_run_arguments(CLI::App& command, RunArgs& args) {
  command.add_option("--gpus", args.gpus, "How many GPUs, all or nothing")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000'000}))
      ->capture_default_str();
  command.add_option("--gpu-type", args.gpu_type, "A GPU type such as h100 (default: any)");
  command
      .add_option("--tier", args.tier,
                  "on-demand (the default), spot (preemptible; needs --max-price), reserved (needs "
                  "--reservation) or internal")
      ->check(CLI::IsMember({"internal", "reserved", "on-demand", "spot"}));
  command.add_option("--max-price", args.max_price, "Spot: the most you pay per GPU-hour, in dollars (1.50)");
  command.add_option("--packing", args.packing, "Where the GPUs must lie: nvlink, rack, block or any (default)")
      ->check(CLI::IsMember({"nvlink", "rack", "block", "any"}));
  command.add_option("--max-runtime", args.max_runtime_s, "Seconds after which the job is stopped (default 3600)")
      ->check(CLI::PositiveNumber);
  command.add_option("--env", args.env, "NAME=VALUE in the job's environment; repeat for more")
      ->allow_extra_args(false);
  command.add_option("--workdir", args.workdir, "The job's working directory (default: the current one)");
  command.add_flag("--requeue", args.requeue, "Queue the job again when it is preempted, rather than end it");
  command.add_option("--reservation", args.reservation_id, "For --tier reserved: the reservation (res_...)");
  command.add_flag("--queue-if-over-quota", args.queue_if_over_quota,
                   "Wait in the queue, rather than be refused, when over your quota");
  command.add_flag("--detach", args.detach, "Print the job's id and return, rather than follow the job");
  command.add_option("--idempotency-key", args.idempotency_key,
                     "Send this Idempotency-Key rather than a fresh one: the same key never makes a second job");
  command.add_option("command", args.command, "The program and its arguments, after the options (or after --)")
      ->required();
  // Everything from the program's name on is the program's: `headroom run
  // python train.py --gpus 8` passes --gpus 8 to train.py.
  command.positionals_at_end(true);
}

void add_run_command(CLI::App& app, int& exit_code, const Env& env) {
  auto args = std::make_shared<RunArgs>();
  add_custom_command(
      app,
      {.name = "run",
       .description = "Run a job: submit it, then show its progress and output until it ends, and exit with its "
                      "exit code",
       .example = "headroom run --gpus 2 --tier spot --max-price 1.50 -- python train.py",
       .add_arguments = [args](CLI::App& command) { add_run_arguments(command, *args); },
       .run = [args](const ClientFlags& flags,
                     const ClientEnvironment& client) { return run_job(*args, flags, client); }},
      exit_code, env);
}

void add_jobs_list(CLI::App& jobs, int& exit_code, const Env& env) {
  auto state = std::make_shared<std::string>();
  add_api_command(
      jobs,
      {.name = "list",
       .description = "List your jobs, newest first",
       .example = "headroom jobs list --state running --limit 20",
       .add_arguments =
           [state](CLI::App& command) {
             command.add_option("--state", *state, "Only the jobs in this state")->check(CLI::IsMember(kJobStates));
           },
       .make_call = [state]() -> Result<ApiCall> {
         std::string target = "/v1/jobs";
         if (!state->empty()) target += "?state=" + encode_path_segment(*state);
         return ApiCall{"GET", target, std::nullopt};
       },
       .shape = Shape::kList,
       .columns = kJobListColumns,
       .paging = Paging::kCursor},
      exit_code, env);
}

void add_jobs_show_and_cancel(CLI::App& jobs, int& exit_code, const Env& env) {
  auto show_id = std::make_shared<std::string>();
  add_api_command(
      jobs,
      {.name = "show",
       .description = "Show one job, with the history of its states",
       .example = "headroom jobs show job_k3v9x2m1q8d7r4t6p0za",
       .add_arguments =
           [show_id](CLI::App& command) { command.add_option("id", *show_id, "Job id (job_...)")->required(); },
       .make_call = [show_id]() -> Result<ApiCall> {
         return ApiCall{"GET", "/v1/jobs/" + encode_path_segment(*show_id), std::nullopt};
       },
       .shape = Shape::kRecord,
       .columns = kJobColumns,
       .render = render_job},
      exit_code, env);

  auto cancel_id = std::make_shared<std::string>();
  add_api_command(
      jobs,
      {.name = "cancel",
       .description = "Cancel a job: out of the queue, or stopped if it runs",
       .example = "headroom jobs cancel job_k3v9x2m1q8d7r4t6p0za",
       .add_arguments =
           [cancel_id](CLI::App& command) { command.add_option("id", *cancel_id, "Job id (job_...)")->required(); },
       .make_call = [cancel_id]() -> Result<ApiCall> {
         return ApiCall{"POST", "/v1/jobs/" + encode_path_segment(*cancel_id) + "/cancel", std::nullopt};
       },
       .shape = Shape::kRecord,
       .columns = kJobColumns,
       .render = render_job},
      exit_code, env);
}

void add_jobs_logs(CLI::App& jobs, int& exit_code, const Env& env) {
  struct LogsArgs {
    std::string id;
    bool follow = false;
  };
  auto args = std::make_shared<LogsArgs>();
  add_custom_command(
      jobs,
      {.name = "logs",
       .description = "Print a job's output (stdout and stderr); with --follow, until it ends, exiting with its "
                      "exit code as `run` does",
       .example = "headroom jobs logs job_k3v9x2m1q8d7r4t6p0za --follow",
       .add_arguments =
           [args](CLI::App& command) {
             command.add_option("id", args->id, "Job id (job_...)")->required();
             command.add_flag("-f,--follow", args->follow, "Keep printing as the job writes, until it ends");
           },
       .run = [args](const ClientFlags& flags, const ClientEnvironment& client) -> int {
         std::unique_ptr<ApiSession> session;
         if (ExitCode code = ApiSession::open(flags, Auth::kRequired, client, session); code != ExitCode::kOk) {
           return static_cast<int>(code);
         }
         if (!args->follow) {
           std::uint64_t offset = 0;
           return print_job_log(*session, args->id, offset, *client.out, *client.err);
         }
         std::unique_ptr<Waiter> waiter = client.make_waiter();
         return follow_job(*session, args->id, *waiter, *client.out, *client.err);
       }},
      exit_code, env);
}

}  // namespace

Result<json::object> make_run_body(const RunArgs& args, const std::function<Result<std::string>()>& current_dir) {
  if (args.command.empty() || args.command.front().empty()) {
    return Status::invalid_argument("give the command to run, such as `headroom run --gpus 2 -- python train.py`");
  }
  json::array command;
  for (const std::string& arg : args.command) command.emplace_back(arg);
  json::object body{{"gpus", args.gpus}, {"command", std::move(command)}};
  if (!args.gpu_type.empty()) body["gpu_type"] = args.gpu_type;
  HR_RETURN_IF_ERROR(add_tier(args, body));
  if (!args.packing.empty()) body["packing"] = args.packing;
  if (args.max_runtime_s > 0) body["max_runtime_s"] = args.max_runtime_s;
  HR_ASSIGN_OR_RETURN(json::object env, env_object(args.env));
  if (!env.empty()) body["env"] = std::move(env);
  HR_ASSIGN_OR_RETURN(body["workdir"], absolute_workdir(args.workdir, current_dir));
  if (args.requeue) body["requeue_on_preempt"] = true;
  if (args.queue_if_over_quota) body["queue_if_over_quota"] = true;
  return body;
}

void add_job_commands(CLI::App& app, int& exit_code, const Env& env) {
  add_run_command(app, exit_code, env);
  CLI::App* jobs = add_command_group(app, "jobs", "List, inspect, follow and cancel your jobs", "headroom jobs list");
  add_jobs_list(*jobs, exit_code, env);
  add_jobs_show_and_cancel(*jobs, exit_code, env);
  add_jobs_logs(*jobs, exit_code, env);
}

}  // namespace headroom::cli
