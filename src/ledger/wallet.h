// Wallet: what raw compute (and later the model gateway) asks of the money
// side before it does paid work. The billing service implements it; a
// compute service without one enforces no budget (unit tests, tools).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/money.h"
#include "common/status.h"
#include "common/time.h"

namespace headroom::ledger {

class Wallet {
 public:
  virtual ~Wallet() = default;

  // ok when the tenant may start paid work; insufficient_funds (HTTP 402),
  // with what it has and how to add more, once its balance and credit are
  // spent.
  virtual Status admit(std::string_view tenant_id) = 0;

  // Holds the cost of a run's first `window_ms` at `per_gpu_hour` x `gpus`
  // as it starts (a pending transfer against the tenant's limit); the run's
  // usage is then charged from the hold first. `run_key` names the run
  // ("<job id>:<start ms>"): holding it again is a no-op. insufficient_funds
  // when the tenant cannot cover it. The hold expires on its own
  // `timeout_ms` after it was made should nobody release it.
  virtual Status hold_run(std::string_view tenant_id, std::string_view job_id, std::string_view run_key,
                          Money per_gpu_hour, std::uint32_t gpus, std::int64_t window_ms, std::int64_t timeout_ms,
                          Timestamp now) = 0;

  // The job's run `run_key` ended and its last usage is recorded: what is
  // left of its hold is released once that usage is charged. Named by the
  // run, so that a release late to the rater never touches a later run's hold.
  virtual void release_run(std::string_view job_id, std::string_view run_key) = 0;

  // Holds the most a model request may cost as it is admitted: its prompt
  // at `input_price` and the most it may generate at `output_price` (per
  // million tokens). Its usage events, whose source is `request_id`, are
  // charged from the hold first. insufficient_funds when the tenant cannot
  // cover it. Expires on its own after `timeout_ms`.
  virtual Status hold_request(std::string_view tenant_id, std::string_view request_id, Money input_price,
                              std::int64_t input_tokens, Money output_price, std::int64_t output_tokens,
                              std::int64_t timeout_ms, Timestamp now) = 0;

  // The request ended and its usage is recorded: what is left of its hold
  // is released once that usage is charged.
  virtual void release_request(std::string_view request_id) = 0;

  // The tenants whose balance and credit are spent, and a number that
  // changes whenever that set may have: a caller polls the number and reads
  // the set only when it moved.
  virtual std::uint64_t exhausted_generation() const = 0;
  virtual std::vector<std::string> exhausted_tenants() const = 0;
};

}  // namespace headroom::ledger
