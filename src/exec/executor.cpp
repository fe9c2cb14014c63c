#include "exec/executor.h"

#include <array>
#include <charconv>
#include <optional>
#include <set>

#include "common/check.h"
#include "common/text.h"
#include "exec/exec_limits.h"

namespace headroom::exec {

std::string shown(std::string_view text) {
  constexpr std::size_t kShownBytes = 200;
  std::string out = to_valid_utf8(text.substr(0, kShownBytes));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  if (text.size() > kShownBytes) out += "...";
  return out;
}

Status validate_job_id(std::string_view job_id) {
  if (job_id.empty()) return Status::invalid_argument("job id is empty");
  if (job_id.size() > limits::kExecJobIdBytes) {
    return Status::invalid_argument("job id is longer than " + std::to_string(limits::kExecJobIdBytes) + " bytes");
  }
  for (char c : job_id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) {
      return Status::invalid_argument("job id \"" + shown(job_id) + "\" holds a character other than A-Z a-z 0-9 _ -");
    }
  }
  return Status::ok();
}

Status validate_run_id(std::string_view run_id) {
  if (run_id.empty()) return Status::invalid_argument("run id is empty");
  if (run_id.size() > limits::kExecRunIdBytes) {
    return Status::invalid_argument("run id is longer than " + std::to_string(limits::kExecRunIdBytes) + " bytes");
  }
  for (char c : run_id) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) {
      return Status::invalid_argument("run id \"" + shown(run_id) +
                                      "\" holds a character other than A-Z a-z 0-9 . _ -");
    }
  }
  return Status::ok();
}

Status check_launch_spec(const LaunchSpec& spec) {
  HR_RETURN_IF_ERROR(validate_job_id(spec.job_id));
  if (!spec.run_id.empty()) HR_RETURN_IF_ERROR(validate_run_id(spec.run_id));
  const std::vector<std::string>& argv = spec.argv;
  if (argv.empty()) return Status::invalid_argument("argv is empty: it must hold at least the command");
  if (argv[0].empty()) return Status::invalid_argument("the command (argv[0]) is empty");
  if (argv.size() > limits::kExecArgs) {
    return Status::invalid_argument("the command has " + std::to_string(argv.size()) +
                                    " arguments, more than the limit of " + std::to_string(limits::kExecArgs));
  }
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    if (argv[i].find('\0') != std::string::npos) {
      return Status::invalid_argument("argument " + std::to_string(i) + " holds NUL");
    }
    bytes += argv[i].size() + 1;
  }
  if (spec.env.size() > limits::kExecEnvVars) {
    return Status::invalid_argument("the job sets " + std::to_string(spec.env.size()) +
                                    " environment variables, more than the limit of " +
                                    std::to_string(limits::kExecEnvVars));
  }
  std::set<std::string_view> seen;
  for (const auto& [name, value] : spec.env) {
    if (name.empty()) return Status::invalid_argument("an environment variable name is empty");
    if (name.find_first_of(std::string_view("=\0", 2)) != std::string::npos) {
      return Status::invalid_argument("environment variable name \"" + shown(name) + "\" holds '=' or NUL");
    }
    if (name == "CUDA_VISIBLE_DEVICES" || name.starts_with("HEADROOM_")) {
      return Status::invalid_argument("environment variable " + shown(name) +
                                      " is set by headroom; a job may not set it");
    }
    if (value.find('\0') != std::string::npos) {
      return Status::invalid_argument("environment variable " + shown(name) + " holds NUL in its value");
    }
    if (!seen.insert(name).second) return Status::invalid_argument("environment variable " + shown(name) + " is set twice");
    bytes += name.size() + value.size() + 2;
  }
  for (int device : spec.gpu_devices) {
    if (device < 0) return Status::invalid_argument("GPU device index " + std::to_string(device) + " is negative");
  }
  for (const std::string& gpu : spec.gpu_names) {
    if (gpu.find_first_of(std::string_view(",\0", 2)) != std::string::npos) {
      return Status::invalid_argument("GPU name \"" + shown(gpu) + "\" holds ',' or NUL");
    }
  }
  if (bytes > limits::kExecArgvEnvBytes) {
    return Status::invalid_argument("the command line and environment take " + std::to_string(bytes) +
                                    " bytes, more than the limit of " + std::to_string(limits::kExecArgvEnvBytes));
  }
  return Status::ok();
}

namespace {

bool is_external_id(std::string_view id) {
  if (id.empty() || id.size() > limits::kExecRunIdBytes) return false;
  for (char c : id) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool is_valid_run_record(const RunRecord& record) {
  if (!validate_run_id(record.run_id)) return false;
  if (record.handle.external_id.empty()) return record.handle.pid > 0;
  return record.handle.pid >= 0 && is_external_id(record.handle.external_id);
}

}  // namespace

std::string format_run_record(const RunRecord& record) {
  CHECK(is_valid_run_record(record));
  std::string line = record.run_id;
  line += ' ';
  line += std::to_string(record.handle.pid);
  line += ' ';
  line += std::to_string(record.handle.start_ticks);
  if (!record.handle.external_id.empty()) {
    line += ' ';
    line += record.handle.external_id;
  }
  line += '\n';
  return line;
}

Result<RunRecord> parse_run_record(std::string_view text) {
  auto bad = [&] {
    return Status::invalid_argument("malformed run record \"" + shown(text.substr(0, 200)) +
                                    "\" (expected \"<run id> <pid> <start ticks> [<external id>]\" and a newline)");
  };
  if (!text.ends_with('\n')) return bad();
  text.remove_suffix(1);
  std::array<std::string_view, 4> fields;
  std::size_t count = 0;
  while (count < fields.size()) {
    const std::size_t space = text.find(' ');
    fields[count++] = text.substr(0, space);
    if (space == std::string_view::npos) {
      text = {};
      break;
    }
    text.remove_prefix(space + 1);
  }
  if (!text.empty() || count < 3) return bad();
  RunRecord record;
  record.run_id = std::string(fields[0]);
  auto number = [](std::string_view digits, auto& out) {
    const auto [ptr, error] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
    return !digits.empty() && error == std::errc() && ptr == digits.data() + digits.size();
  };
  if (!number(fields[1], record.handle.pid) || !number(fields[2], record.handle.start_ticks)) return bad();
  if (count == 4) {
    if (fields[3].empty()) return bad();
    record.handle.external_id = std::string(fields[3]);
  }
  if (!is_valid_run_record(record)) return bad();
  return record;
}

Result<int> parse_exit_record(std::string_view text) {
  auto bad = [&] {
    return Status::invalid_argument("malformed exit record \"" + shown(text.substr(0, 32)) +
                                    "\" (expected \"exit <code>\" or \"signal <n>\" and a newline)");
  };
  if (!text.ends_with('\n')) return bad();
  text.remove_suffix(1);
  auto number = [](std::string_view digits, int min, int max) -> std::optional<int> {
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    int value = 0;
    const auto [ptr, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (error != std::errc() || ptr != digits.data() + digits.size() || value < min || value > max) return std::nullopt;
    return value;
  };
  if (text.starts_with("exit ")) {
    if (std::optional<int> code = number(text.substr(5), 0, 255)) return *code;
  } else if (text.starts_with("signal ")) {
    if (std::optional<int> signo = number(text.substr(7), 1, 64)) return 128 + *signo;
  }
  return bad();
}

}  // namespace headroom::exec
