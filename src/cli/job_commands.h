// The commands for compute jobs: `headroom run` (submit a job, then follow
// it unless --detach) and `headroom jobs list|show|logs|cancel`.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace CLI {
class App;
}

namespace headroom::cli {

struct ClientEnvironment;

// `run`'s arguments as parsed; empty (or zero, or false) means not given,
// and the server's default applies.
struct RunArgs {
  std::int64_t gpus = 1;
  std::string gpu_type;
  std::string tier;
  std::string max_price;  // dollars per GPU-hour, "1.50"
  std::string packing;
  std::int64_t max_runtime_s = 0;
  std::vector<std::string> env;  // NAME=VALUE each
  std::string workdir;           // empty: the current directory
  bool requeue = false;
  std::string reservation_id;
  bool queue_if_over_quota = false;
  bool detach = false;
  std::string idempotency_key;  // empty: a fresh random one
  std::vector<std::string> command;
};

// The POST /v1/jobs body for `args`: gpus, command and workdir always (a
// relative --workdir, or none, is taken from `current_dir`), the other
// fields only when given. invalid_argument, naming the flag, for what the
// parser could not catch (--tier spot without --max-price, --env without
// '=', no command).
Result<boost::json::object> make_run_body(const RunArgs& args, const std::function<Result<std::string>()>& current_dir);

// Adds `run` and `jobs` to `app`, as add_client_commands does.
void add_job_commands(CLI::App& app, int& exit_code, const std::shared_ptr<const ClientEnvironment>& env);

}  // namespace headroom::cli
