#include "config/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <initializer_list>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "common/limits.h"
#include "fleet/fleet_limits.h"

namespace headroom::config {
namespace {

using fleet::quote_for_message;

constexpr std::size_t kPatternWidthMax = 20;  // "{:020}" pads as far as an int64 reaches

std::string_view type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::none: return "nothing";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
  }
  return "a value";
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The file's name and how to point into it.
class Source {
 public:
  explicit Source(std::string_view name) : name_(name) {}

  std::string where(const toml::source_region& region) const {
    std::string out = name_;
    if (region.begin.line > 0) {
      out += ':' + std::to_string(region.begin.line) + ':' + std::to_string(region.begin.column);
    }
    return out;
  }
  Status error(const toml::source_region& region, std::string_view path, std::string_view message) const {
    return Status::invalid_argument(where(region) + ": " + std::string(path) + ": " + std::string(message));
  }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// One TOML table of the schema: typed getters that name the key and line of
// any mistake, and a check that no key is unknown.
class TableReader {
 public:
  TableReader(const Source& source, const toml::table& table, std::string path)
      : source_(source), table_(table), path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  const toml::table& table() const { return table_; }

  std::string path_of(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  Status error(std::string_view key, std::string_view message) const {
    const toml::node* node = table_.get(key);
    return source_.error(node ? node->source() : table_.source(), path_of(key), message);
  }
  Status table_error(std::string_view message) const {
    return source_.error(table_.source(), path_.empty() ? "(top level)" : path_, message);
  }

  // Fails on the first key not in `known`, suggesting the nearest known one.
  Status check_keys(std::initializer_list<std::string_view> known) const {
    for (auto&& [key, node] : table_) {
      const std::string_view name = key.str();
      if (std::find(known.begin(), known.end(), name) != known.end()) continue;
      std::string message = "unknown key " + quote_for_message(name);
      std::string_view nearest;
      std::size_t best = 3;  // suggest only near misses
      for (std::string_view candidate : known) {
        const std::size_t d = edit_distance(name, candidate);
        if (d < best) {
          best = d;
          nearest = candidate;
        }
      }
      if (!nearest.empty()) {
        message += " (did you mean " + quote_for_message(nearest) + "?)";
      } else {
        // Appended piecewise: GCC 12 at -O3 warns falsely (-Wrestrict, bug
        // 105329) on "literal" + std::string&& here.
        message += " (known keys:";
        for (std::string_view candidate : known) {
          message += ' ';
          message += candidate;
        }
        message += ")";
      }
      return source_.error(key.source(), path_.empty() ? "(top level)" : path_, message);
    }
    return Status::ok();
  }

  const toml::node* find(std::string_view key) const { return table_.get(key); }
  const Source& source() const { return source_; }

  Result<std::optional<std::string>> optional_string(std::string_view key, std::size_t max_bytes) const {
    const toml::node* node = table_.get(key);
    if (node == nullptr) return std::optional<std::string>();
    const auto* value = node->as_string();
    if (value == nullptr) return error(key, "expected a string, got " + std::string(type_name(node->type())));
    const std::string& text = value->get();
    if (text.size() > max_bytes) return error(key, "longer than " + std::to_string(max_bytes) + " bytes");
    if (text.find('\0') != std::string::npos) return error(key, "holds a NUL character");
    return std::optional<std::string>(text);
  }
  Result<std::string> required_string(std::string_view key, std::size_t max_bytes) const {
    HR_ASSIGN_OR_RETURN(auto value, optional_string(key, max_bytes));
    if (!value) return missing(key, "a string");
    return std::move(*value);
  }

  Result<std::optional<std::int64_t>> optional_integer(std::string_view key, std::int64_t min, std::int64_t max) const {
    const toml::node* node = table_.get(key);
    if (node == nullptr) return std::optional<std::int64_t>();
    const auto* value = node->as_integer();
    if (value == nullptr) return error(key, "expected an integer, got " + std::string(type_name(node->type())));
    const std::int64_t n = value->get();
    if (n < min || n > max) {
      return error(key,
                   std::to_string(n) + " is out of range (" + std::to_string(min) + " to " + std::to_string(max) + ")");
    }
    return std::optional<std::int64_t>(n);
  }
  Result<std::int64_t> required_integer(std::string_view key, std::int64_t min, std::int64_t max) const {
    HR_ASSIGN_OR_RETURN(auto value, optional_integer(key, min, max));
    if (!value) return missing(key, "an integer");
    return *value;
  }

  Result<std::optional<bool>> optional_bool(std::string_view key) const {
    const toml::node* node = table_.get(key);
    if (node == nullptr) return std::optional<bool>();
    const auto* value = node->as_boolean();
    if (value == nullptr) return error(key, "expected true or false, got " + std::string(type_name(node->type())));
    return std::optional<bool>(value->get());
  }

  // An array of strings, empty when absent.
  Result<std::vector<std::string>> string_array(std::string_view key, std::size_t max_count,
                                                std::size_t max_bytes) const {
    std::vector<std::string> out;
    const toml::node* node = table_.get(key);
    if (node == nullptr) return out;
    const auto* array = node->as_array();
    if (array == nullptr) return error(key, "expected an array of strings, got " + std::string(type_name(node->type())));
    if (array->size() > max_count) return error(key, "at most " + std::to_string(max_count) + " entries");
    for (const toml::node& element : *array) {
      const auto* text = element.as_string();
      if (text == nullptr || text->get().empty() || text->get().size() > max_bytes) {
        return error(key, "expected non-empty strings of at most " + std::to_string(max_bytes) + " bytes");
      }
      out.push_back(text->get());
    }
    return out;
  }

  // A sub-table, or null when absent.
  Result<const toml::table*> optional_table(std::string_view key) const {
    const toml::node* node = table_.get(key);
    if (node == nullptr) return static_cast<const toml::table*>(nullptr);
    const auto* table = node->as_table();
    if (table == nullptr) return error(key, "expected a table, got " + std::string(type_name(node->type())));
    return table;
  }

  // An array whose every element is a table ([[path.key]] or [{...}, ...]).
  Result<std::vector<const toml::table*>> tables(std::string_view key, std::size_t max_count) const {
    std::vector<const toml::table*> out;
    const toml::node* node = table_.get(key);
    if (node == nullptr) return missing(key, "an array of tables ([[" + path_of(key) + "]])");
    const auto* array = node->as_array();
    if (array == nullptr) {
      return error(
          key, "expected an array of tables ([[" + path_of(key) + "]]), got " + std::string(type_name(node->type())));
    }
    if (array->size() > max_count) {
      return error(key, "more than " + std::to_string(max_count) + " entries");
    }
    for (const toml::node& element : *array) {
      const auto* table = element.as_table();
      if (table == nullptr) {
        return source_.error(element.source(), path_of(key),
                             "expected a table, got " + std::string(type_name(element.type())));
      }
      out.push_back(table);
    }
    return out;
  }

 private:
  Status missing(std::string_view key, std::string_view what) const {
    return source_.error(table_.source(), path_.empty() ? "(top level)" : path_,
                         "missing required key " + quote_for_message(key) + " (" + std::string(what) + ")");
  }

  const Source& source_;
  const toml::table& table_;
  std::string path_;
};

// ---- Listen addresses --------------------------------------------------------

bool is_host_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  std::size_t label = 0;
  for (char c : host) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok || ++label > 63) return false;
  }
  return label > 0 || host.size() > 1;  // a trailing dot is the root, fine after a label
}

// ---- Name patterns -------------------------------------------------------------

// "hgx-{:03}": a prefix, a number, a suffix. A name without braces is a
// pattern without a placeholder, which expands to itself.
struct NamePattern {
  std::string prefix;
  std::string suffix;
  bool has_placeholder = false;
  bool zero_pad = false;
  std::size_t width = 0;

  std::string expand(std::int64_t number) const {
    if (!has_placeholder) return prefix;
    std::string digits = std::to_string(number);
    std::string out = prefix;
    if (digits.size() < width) out.append(width - digits.size(), zero_pad ? '0' : ' ');
    out += digits;
    out += suffix;
    return out;
  }
};

// Parses "{}", "{:3}" or "{:03}" in `text`; the message says what is wrong.
Result<NamePattern> parse_pattern(std::string_view text) {
  const std::string usage = "a pattern holds one {} or {:03} (a number, zero-padded to 3 digits)";
  NamePattern pattern;
  const auto open = text.find('{');
  if (open == std::string_view::npos) {
    if (text.find('}') != std::string_view::npos) return Status::invalid_argument("a stray '}'; " + usage);
    pattern.prefix = std::string(text);
    return pattern;
  }
  const auto close = text.find('}', open);
  if (close == std::string_view::npos) return Status::invalid_argument("an unclosed '{'; " + usage);
  std::string_view spec = text.substr(open + 1, close - open - 1);
  if (!spec.empty()) {
    if (spec.front() != ':' || spec.size() < 2) return Status::invalid_argument("bad placeholder; " + usage);
    spec.remove_prefix(1);
    if (spec.front() == '0') {
      pattern.zero_pad = true;
      spec.remove_prefix(1);
    }
    if (spec.empty() || spec.size() > 2 ||
        !std::all_of(spec.begin(), spec.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return Status::invalid_argument("bad placeholder; " + usage);
    }
    std::from_chars(spec.data(), spec.data() + spec.size(), pattern.width);
    if (pattern.width == 0 || pattern.width > kPatternWidthMax) {
      return Status::invalid_argument("placeholder width must be 1 to " + std::to_string(kPatternWidthMax));
    }
  }
  pattern.prefix = std::string(text.substr(0, open));
  pattern.suffix = std::string(text.substr(close + 1));
  if (pattern.suffix.find_first_of("{}") != std::string::npos || pattern.prefix.find('}') != std::string::npos) {
    return Status::invalid_argument("more than one placeholder; " + usage);
  }
  pattern.has_placeholder = true;
  return pattern;
}

// rack, block or nvlink_domain of a node group: the same name for all nodes
// ("r01"), or { pattern = "r{:02}", every = 18, first = 1 }: a new number
// every `every` nodes of the group.
struct GroupedName {
  NamePattern pattern;
  std::int64_t every = 1;
  std::int64_t first = 1;

  std::string for_node(std::int64_t position) const { return pattern.expand(first + position / every); }
};

Result<std::optional<GroupedName>> read_grouped_name(const Source& source, const TableReader& group,
                                                     std::string_view key) {
  const toml::node* node = group.find(key);
  if (node == nullptr) return std::optional<GroupedName>();
  GroupedName name;
  if (node->is_string()) {
    HR_ASSIGN_OR_RETURN(std::string text, group.required_string(key, limits::kFleetNameBytes));
    if (text.find_first_of("{}") != std::string::npos) {
      return group.error(key, "a numbered name takes the table form, " + std::string(key) + " = { pattern = " +
                                  quote_for_message(text) + ", every = N }: a new number every N nodes");
    }
    name.pattern.prefix = std::move(text);
    return std::optional<GroupedName>(std::move(name));
  }
  if (!node->is_table()) {
    return group.error(
        key, "expected a string or { pattern = \"...{:02}\", every = N }, got " + std::string(type_name(node->type())));
  }
  TableReader table(source, *node->as_table(), group.path_of(key));
  HR_RETURN_IF_ERROR(table.check_keys({"pattern", "every", "first"}));
  HR_ASSIGN_OR_RETURN(std::string text, table.required_string("pattern", limits::kConfigPatternBytes));
  auto pattern = parse_pattern(text);
  if (!pattern.is_ok()) return table.error("pattern", quote_for_message(text) + ": " + pattern.status().message());
  if (!pattern->has_placeholder) {
    return table.error("pattern", quote_for_message(text) +
                                      " has no {} placeholder; for one name for all nodes write " + std::string(key) +
                                      " = " + quote_for_message(text));
  }
  name.pattern = std::move(*pattern);
  HR_ASSIGN_OR_RETURN(name.every, table.required_integer("every", 1, static_cast<std::int64_t>(limits::kFleetNodes)));
  HR_ASSIGN_OR_RETURN(auto first, table.optional_integer("first", 0, limits::kConfigPatternFirstMax));
  if (first) name.first = *first;
  return std::optional<GroupedName>(std::move(name));
}

// ---- Sections ----------------------------------------------------------------

}  // namespace

Status check_store_url(std::string_view url) {
  if (url.starts_with("postgres://") || url.starts_with("postgresql://")) return Status::ok();
  if (url.starts_with("sqlite:") && url.size() > 7) return Status::ok();
  return Status::invalid_argument("expected sqlite:PATH, postgres://... or postgresql://..., got \"" +
                                  std::string(url.substr(0, 40)) + "\"");
}

Status check_advertise_url(std::string_view url) {
  bool scheme = url.starts_with("http://") || url.starts_with("https://");
  std::string_view rest = url.substr(url.find("://") == std::string_view::npos ? 0 : url.find("://") + 3);
  if (scheme && !rest.empty() && rest.find_first_of(" \t\r\n/?#") == std::string_view::npos) return Status::ok();
  return Status::invalid_argument("expected http://HOST:PORT or https://HOST:PORT (no path), got \"" +
                                  std::string(url.substr(0, 60)) + "\"");
}

namespace {

Status read_server(const TableReader& server, ServeConfig& config) {
  HR_RETURN_IF_ERROR(server.check_keys({"listen", "advertise_url", "data_dir", "store", "threads", "tls_cert", "tls_key"}));
  HR_ASSIGN_OR_RETURN(auto listen, server.optional_string("listen", limits::kListenAddressBytes));
  if (listen) {
    auto parsed = parse_listen_address(*listen);
    if (!parsed.is_ok()) return server.error("listen", parsed.status().message());
    config.listen = std::move(*listen);
  }
  HR_ASSIGN_OR_RETURN(auto advertise_url, server.optional_string("advertise_url", limits::kConfigPathBytes));
  if (advertise_url) {
    Status valid = check_advertise_url(*advertise_url);
    if (!valid) return server.error("advertise_url", valid.message());
    config.advertise_url = std::move(*advertise_url);
  }
  HR_ASSIGN_OR_RETURN(auto data_dir, server.optional_string("data_dir", limits::kConfigPathBytes));
  if (data_dir) {
    if (data_dir->empty()) return server.error("data_dir", "must not be empty");
    config.data_dir = std::move(*data_dir);
  }
  HR_ASSIGN_OR_RETURN(auto store, server.optional_string("store", limits::kConfigPathBytes));
  if (store) {
    Status valid = check_store_url(*store);
    if (!valid) return server.error("store", valid.message());
    config.store = std::move(*store);
  }
  HR_ASSIGN_OR_RETURN(auto threads,
                      server.optional_integer("threads", 0, static_cast<std::int64_t>(limits::kServerThreads)));
  if (threads) config.threads = static_cast<std::uint32_t>(*threads);
  HR_ASSIGN_OR_RETURN(auto tls_cert, server.optional_string("tls_cert", limits::kConfigPathBytes));
  HR_ASSIGN_OR_RETURN(auto tls_key, server.optional_string("tls_key", limits::kConfigPathBytes));
  if (tls_cert && tls_cert->empty()) return server.error("tls_cert", "must not be empty");
  if (tls_key && tls_key->empty()) return server.error("tls_key", "must not be empty");
  if (tls_cert.has_value() != tls_key.has_value()) {
    return tls_cert ? server.error("tls_cert", "tls_cert needs tls_key as well")
                    : server.error("tls_key", "tls_key needs tls_cert as well");
  }
  config.tls_cert = std::move(tls_cert);
  config.tls_key = std::move(tls_key);
  return Status::ok();
}

Status read_log(const TableReader& log, ServeConfig& config) {
  HR_RETURN_IF_ERROR(log.check_keys({"format", "level"}));
  HR_ASSIGN_OR_RETURN(auto format, log.optional_string("format", 16));
  if (format) {
    auto parsed = parse_log_format(*format);
    if (!parsed.is_ok()) return log.error("format", parsed.status().message());
    config.log.format = *parsed;
  }
  HR_ASSIGN_OR_RETURN(auto level, log.optional_string("level", 16));
  if (level) {
    auto parsed = parse_log_level(*level);
    if (!parsed.is_ok()) return log.error("level", parsed.status().message());
    config.log.level = *parsed;
  }
  return Status::ok();
}

Status read_exec(const TableReader& exec, ServeConfig& config) {
  HR_RETURN_IF_ERROR(
      exec.check_keys({"kind", "jobs_dir", "slurm_conf", "slurm_bin_dir", "partition", "gpu_memory_gib"}));
  ExecConfig& out = config.exec;
  HR_ASSIGN_OR_RETURN(auto kind, exec.optional_string("kind", 16));
  if (kind) {
    if (*kind != "local" && *kind != "slurm") return exec.error("kind", "expected \"local\" or \"slurm\"");
    out.kind = std::move(*kind);
  }
  for (auto [key, field] : {std::pair{"jobs_dir", &out.jobs_dir}, std::pair{"slurm_conf", &out.slurm_conf},
                            std::pair{"slurm_bin_dir", &out.slurm_bin_dir}}) {
    HR_ASSIGN_OR_RETURN(auto path, exec.optional_string(key, limits::kConfigPathBytes));
    if (!path) continue;
    if (path->empty() || (*path)[0] != '/') return exec.error(key, "must be an absolute path");
    *field = std::move(*path);
  }
  HR_ASSIGN_OR_RETURN(auto partition, exec.optional_string("partition", limits::kFleetNameBytes));
  if (partition) {
    if (!fleet::is_valid_fleet_name(*partition)) return exec.error("partition", "is not a partition name");
    out.partition = std::move(*partition);
  }
  HR_ASSIGN_OR_RETURN(const toml::table* memory, exec.optional_table("gpu_memory_gib"));
  if (memory) {
    TableReader reader(exec.source(), *memory, exec.path_of("gpu_memory_gib"));
    for (auto&& [key, node] : *memory) {
      HR_ASSIGN_OR_RETURN(std::int64_t gib, reader.required_integer(key.str(), 1, limits::kGpuMemoryMib / 1024));
      out.gpu_memory_gib[std::string(key.str())] = gib;
    }
  }
  if (out.kind == "slurm" && out.jobs_dir.empty()) {
    return exec.error("kind", "kind = \"slurm\" needs jobs_dir: a directory every Slurm node mounts at the same path");
  }
  return Status::ok();
}

Status read_compute(const TableReader& compute, ServeConfig& config) {
  HR_RETURN_IF_ERROR(compute.check_keys({"spot_grace_s", "usage_interval_s", "internal_buffer", "prices"}));
  HR_ASSIGN_OR_RETURN(auto grace, compute.optional_integer("spot_grace_s", 0, 3600));
  if (grace) config.compute.spot_grace_s = *grace;
  HR_ASSIGN_OR_RETURN(auto interval, compute.optional_integer("usage_interval_s", 1, 3600));
  if (interval) config.compute.usage_interval_s = *interval;
  HR_ASSIGN_OR_RETURN(const toml::table* buffer, compute.optional_table("internal_buffer"));
  if (buffer) {
    TableReader reader(compute.source(), *buffer, compute.path_of("internal_buffer"));
    for (auto&& [key, node] : *buffer) {
      HR_ASSIGN_OR_RETURN(std::int64_t n, reader.required_integer(key.str(), 0, limits::kFleetGpus));
      config.compute.internal_buffer[std::string(key.str())] = static_cast<std::uint32_t>(n);
    }
  }
  HR_ASSIGN_OR_RETURN(const toml::table* prices, compute.optional_table("prices"));
  if (prices) {
    TableReader reader(compute.source(), *prices, compute.path_of("prices"));
    for (auto&& [key, node] : *prices) {
      HR_ASSIGN_OR_RETURN(const toml::table* type, reader.optional_table(key.str()));
      TableReader entry(compute.source(), *type, reader.path_of(key.str()));
      HR_RETURN_IF_ERROR(entry.check_keys({"on_demand", "reserved", "spot"}));
      GpuPriceConfig& out = config.compute.prices[std::string(key.str())];
      for (auto [name, slot] : {std::pair{"on_demand", &out.on_demand}, std::pair{"reserved", &out.reserved},
                                std::pair{"spot", &out.spot}}) {
        HR_ASSIGN_OR_RETURN(auto text, entry.optional_string(name, 32));
        if (!text) continue;
        auto money = Money::parse(*text);
        if (!money || money->nanos() < 0) {
          return entry.error(name, "expected a price per GPU-hour such as \"2.50\", got " + quote_for_message(*text));
        }
        *slot = *money;
      }
    }
  }
  return Status::ok();
}

Status read_billing(const TableReader& billing, ServeConfig& config) {
  HR_RETURN_IF_ERROR(billing.check_keys({"job_hold_window_s", "token_prices"}));
  HR_ASSIGN_OR_RETURN(auto window, billing.optional_integer("job_hold_window_s", 0, 30 * 24 * 3600));
  if (window) config.billing.job_hold_window_s = *window;
  HR_ASSIGN_OR_RETURN(const toml::table* prices, billing.optional_table("token_prices"));
  if (!prices) return Status::ok();
  TableReader reader(billing.source(), *prices, billing.path_of("token_prices"));
  for (auto&& [key, node] : *prices) {
    if (key.str().empty() || key.str().size() > limits::kModelNameBytes) {
      return reader.error(key.str(), "a model name is 1 to " + std::to_string(limits::kModelNameBytes) + " bytes");
    }
    HR_ASSIGN_OR_RETURN(const toml::table* model, reader.optional_table(key.str()));
    if (!model) return reader.error(key.str(), "expected a table such as { input = \"0.05\", output = \"0.20\" }");
    TableReader entry(billing.source(), *model, reader.path_of(key.str()));
    HR_RETURN_IF_ERROR(entry.check_keys({"input", "output"}));
    TokenPriceConfig& out = config.billing.token_prices[std::string(key.str())];
    for (auto [name, slot] : {std::pair{"input", &out.input}, std::pair{"output", &out.output}}) {
      HR_ASSIGN_OR_RETURN(auto text, entry.required_string(name, 32));
      auto money = Money::parse(text);
      if (!money || money->nanos() < 0) {
        return entry.error(name, "expected a price per million tokens such as \"0.05\", got " + quote_for_message(text));
      }
      *slot = *money;
    }
  }
  return Status::ok();
}

Status read_models(const TableReader& models, ServeConfig& config) {
  auto& out = config.models.emplace();
  for (auto&& [key, node] : models.table()) {
    const std::string_view name = key.str();
    if (name.empty() || name.size() > limits::kModelNameBytes) {
      return models.error(name, "a model name is 1 to " + std::to_string(limits::kModelNameBytes) + " bytes");
    }
    HR_ASSIGN_OR_RETURN(const toml::table* table, models.optional_table(name));
    if (!table) return models.error(name, "expected a table such as { file = \"model.gguf\" }");
    TableReader entry(models.source(), *table, models.path_of(name));
    HR_RETURN_IF_ERROR(entry.check_keys({"file", "upstreams", "upstream_model", "upstream_api_key_env",
                                         "upstream_workers", "input_price", "output_price", "threads", "kv_cache_mb",
                                         "context_tokens", "max_running"}));
    ModelConfig& m = out[std::string(name)];
    HR_ASSIGN_OR_RETURN(auto file, entry.optional_string("file", 4096));
    HR_ASSIGN_OR_RETURN(m.upstreams, entry.string_array("upstreams", 64, 2048));
    if (file.has_value() == !m.upstreams.empty()) {
      return entry.table_error("give either file (a GGUF model for the built-in engine) or upstreams (base URLs of "
                               "OpenAI-compatible servers), not both or neither");
    }
    m.file = file.value_or("");
    HR_ASSIGN_OR_RETURN(auto upstream_model, entry.optional_string("upstream_model", 256));
    m.upstream_model = upstream_model.value_or("");
    HR_ASSIGN_OR_RETURN(auto key_env, entry.optional_string("upstream_api_key_env", 256));
    m.upstream_api_key_env = key_env.value_or("");
    HR_ASSIGN_OR_RETURN(auto workers, entry.optional_integer("upstream_workers", 1, 4096));
    if (workers) m.upstream_workers = static_cast<std::uint32_t>(*workers);
    for (auto [field, slot] : {std::pair{"input_price", &m.input_price}, std::pair{"output_price", &m.output_price}}) {
      HR_ASSIGN_OR_RETURN(auto text, entry.optional_string(field, 32));
      if (!text) continue;
      auto money = Money::parse(*text);
      if (!money || money->nanos() < 0) {
        return entry.error(field, "expected a price per million tokens such as \"0.05\", got " + quote_for_message(*text));
      }
      *slot = *money;
    }
    HR_ASSIGN_OR_RETURN(auto threads, entry.optional_integer("threads", 1, 256));
    if (threads) m.threads = static_cast<std::uint32_t>(*threads);
    HR_ASSIGN_OR_RETURN(auto kv, entry.optional_integer("kv_cache_mb", 1, 1 << 20));
    if (kv) m.kv_cache_mb = static_cast<std::uint32_t>(*kv);
    HR_ASSIGN_OR_RETURN(auto context, entry.optional_integer("context_tokens", 2, 1 << 20));
    if (context) m.context_tokens = static_cast<std::uint32_t>(*context);
    HR_ASSIGN_OR_RETURN(auto running, entry.optional_integer("max_running", 1, 256));
    if (running) m.max_running = static_cast<std::uint32_t>(*running);
    if (config.billing.token_prices.contains(std::string(name))) {
      return entry.error("input_price", "model " + std::string(name) +
                                            " is priced here and in [billing.token_prices]: keep one");
    }
  }
  return Status::ok();
}

Status read_gateway(const TableReader& gateway, ServeConfig& config) {
  HR_RETURN_IF_ERROR(gateway.check_keys({"tenant_limits", "key_limits"}));
  for (auto [name, out] : {std::pair{"tenant_limits", &config.gateway.tenant_limits},
                           std::pair{"key_limits", &config.gateway.key_limits}}) {
    HR_ASSIGN_OR_RETURN(const toml::table* table, gateway.optional_table(name));
    if (!table) continue;
    TableReader limits(gateway.source(), *table, gateway.path_of(name));
    HR_RETURN_IF_ERROR(limits.check_keys({"requests_per_minute", "tokens_per_minute", "concurrent"}));
    for (auto [field, slot] : {std::pair{"requests_per_minute", &out->requests_per_minute},
                               std::pair{"tokens_per_minute", &out->tokens_per_minute},
                               std::pair{"concurrent", &out->concurrent}}) {
      HR_ASSIGN_OR_RETURN(auto value, limits.optional_integer(field, 0, std::int64_t{1} << 40));
      if (value) *slot = *value;
    }
  }
  return Status::ok();
}

Status read_market(const TableReader& market, ServeConfig& config) {
  HR_RETURN_IF_ERROR(market.check_keys({"clearing_interval_s", "economics", "internal_forecast"}));
  HR_ASSIGN_OR_RETURN(auto interval, market.optional_integer("clearing_interval_s", 0, 3600));
  if (interval) config.market.clearing_interval_s = *interval;
  if (const toml::node* forecast = market.table().get("internal_forecast")) {
    const toml::array* entries = forecast->as_array();
    if (entries == nullptr || entries->size() > limits::kCalendarForecastEntries) {
      return market.error("internal_forecast", "expected an array of tables ([[market.internal_forecast]]), at most " +
                                                   std::to_string(limits::kCalendarForecastEntries));
    }
    for (std::size_t i = 0; i < entries->size(); ++i) {
      const toml::table* table = (*entries)[i].as_table();
      const std::string path = market.path_of("internal_forecast") + "[" + std::to_string(i) + "]";
      if (table == nullptr) return market.error("internal_forecast", path + ": expected a table");
      TableReader entry(market.source(), *table, path);
      HR_RETURN_IF_ERROR(entry.check_keys({"gpu_type", "gpus", "from", "to"}));
      market::ForecastEntry f;
      HR_ASSIGN_OR_RETURN(f.gpu_type, entry.required_string("gpu_type", limits::kGpuTypeNameBytes));
      HR_ASSIGN_OR_RETURN(std::int64_t gpus, entry.required_integer("gpus", 1, limits::kFleetGpus));
      f.gpus = static_cast<std::uint32_t>(gpus);
      for (auto [name, slot] : {std::pair{"from", &f.from}, std::pair{"to", &f.to}}) {
        HR_ASSIGN_OR_RETURN(std::string text, entry.required_string(name, 64));
        auto when = parse_rfc3339(text);
        if (!when) return entry.error(name, "expected an RFC 3339 time such as \"2026-12-01T00:00:00Z\"");
        *slot = *when;
      }
      if (f.to <= f.from) return entry.error("to", "must be after from");
      config.market.internal_forecast.push_back(std::move(f));
    }
  }
  HR_ASSIGN_OR_RETURN(const toml::table* economics, market.optional_table("economics"));
  if (!economics) return Status::ok();
  TableReader types(market.source(), *economics, market.path_of("economics"));
  for (auto&& [key, node] : *economics) {
    HR_ASSIGN_OR_RETURN(const toml::table* table, types.optional_table(key.str()));
    if (!table) return types.error(key.str(), "expected a table of the GPU type's economics");
    TableReader entry(market.source(), *table, types.path_of(key.str()));
    HR_RETURN_IF_ERROR(entry.check_keys({"purchase_price", "in_service", "useful_life_years", "salvage_value",
                                         "depreciation", "power_watts", "pue", "energy_price_per_kwh",
                                         "other_cost_per_gpu_hour", "spot_floor", "on_demand_floor",
                                         "reserved_floor", "floor_utilization_percent"}));
    GpuEconomicsConfig out;
    market::GpuEconomics& e = out.economics;
    e.gpu_type = std::string(key.str());
    for (auto [name, slot, required] : {std::tuple{"purchase_price", &e.purchase_price, true},
                                        std::tuple{"salvage_value", &e.salvage_value, false},
                                        std::tuple{"energy_price_per_kwh", &e.energy_price_per_kwh, false},
                                        std::tuple{"other_cost_per_gpu_hour", &e.other_cost_per_gpu_hour, false}}) {
      HR_ASSIGN_OR_RETURN(auto text, entry.optional_string(name, 32));
      if (!text) {
        if (required) return entry.table_error(std::string(name) + ": required, in dollars such as \"30000.00\"");
        continue;
      }
      auto money = Money::parse(*text);
      if (!money || money->nanos() < 0) {
        return entry.error(name, "expected an amount in dollars such as \"0.10\", got " + quote_for_message(*text));
      }
      *slot = *money;
    }
    HR_ASSIGN_OR_RETURN(std::string in_service, entry.required_string("in_service", 64));
    auto when = parse_rfc3339(in_service);
    if (!when) return entry.error("in_service", "expected an RFC 3339 time such as \"2025-06-01T00:00:00Z\"");
    e.in_service = *when;
    HR_ASSIGN_OR_RETURN(auto life, entry.optional_integer("useful_life_years", 1, limits::kEconomicsLifeYearsMax));
    if (life) e.useful_life_years = static_cast<std::int32_t>(*life);
    HR_ASSIGN_OR_RETURN(auto method, entry.optional_string("depreciation", 32));
    if (method) {
      auto parsed = market::parse_depreciation_method(*method);
      if (!parsed) return entry.error("depreciation", parsed.status().message());
      e.method = *parsed;
    }
    HR_ASSIGN_OR_RETURN(auto watts, entry.optional_integer("power_watts", 0, limits::kEconomicsPowerWattsMax));
    if (watts) e.power_watts = *watts;
    HR_ASSIGN_OR_RETURN(auto pue, entry.optional_string("pue", 16));
    if (pue) {
      // A decimal with at most 3 places, read exactly (1.3 -> 1300 thousandths).
      auto parsed = Money::parse(*pue);
      if (!parsed || parsed->nanos() % 1'000'000 != 0) {
        return entry.error("pue", "expected a decimal such as \"1.30\" (at most 3 decimals)");
      }
      e.pue_milli = parsed->nanos() / 1'000'000;
    }
    HR_ASSIGN_OR_RETURN(auto floor, entry.optional_string("spot_floor", 16));
    if (floor) {
      auto parsed = market::parse_floor_policy(*floor);
      if (!parsed) return entry.error("spot_floor", parsed.status().message());
      out.spot_floor = *parsed;
    }
    for (auto [name, slot] : {std::pair{"on_demand_floor", &out.on_demand_floor},
                              std::pair{"reserved_floor", &out.reserved_floor}}) {
      HR_ASSIGN_OR_RETURN(auto policy, entry.optional_string(name, 16));
      if (!policy || *policy == "none") continue;
      auto parsed = market::parse_floor_policy(*policy);
      if (!parsed) return entry.error(name, "expected none, marginal or full_cost");
      *slot = *parsed;
    }
    HR_ASSIGN_OR_RETURN(auto utilization, entry.optional_integer("floor_utilization_percent", 1, 100));
    if (utilization) out.floor_utilization_permille = static_cast<std::int32_t>(*utilization * 10);
    if (Status valid = market::validate(e); !valid) return entry.table_error(valid.message());
    config.market.economics[e.gpu_type] = std::move(out);
  }
  return Status::ok();
}

struct FleetBuilder {
  fleet::FleetSpec fleet;
  std::unordered_map<std::string, std::uint32_t> type_lines;  // GPU type name -> line declared
  std::unordered_map<std::string, std::uint32_t> node_lines;  // node name -> line declared
  std::size_t gpus = 0;
};

Status read_gpu_type(const TableReader& entry, FleetBuilder& builder) {
  HR_RETURN_IF_ERROR(entry.check_keys({"name", "display_name", "memory_gib"}));
  fleet::GpuType type;
  HR_ASSIGN_OR_RETURN(type.name, entry.required_string("name", limits::kGpuTypeNameBytes));
  if (!fleet::is_valid_gpu_type_name(type.name)) {
    return entry.error("name", quote_for_message(type.name) +
                                   " is not a valid GPU type name (a-z 0-9 . _ -, starting with a "
                                   "letter or digit, lower case)");
  }
  const std::uint32_t line = entry.table().source().begin.line;
  if (auto [it, inserted] = builder.type_lines.try_emplace(type.name, line); !inserted) {
    return entry.error("name", "GPU type " + quote_for_message(type.name) + " is already declared at line " +
                                   std::to_string(it->second));
  }
  HR_ASSIGN_OR_RETURN(auto display_name, entry.optional_string("display_name", limits::kGpuDisplayNameBytes));
  if (display_name) type.display_name = std::move(*display_name);
  HR_ASSIGN_OR_RETURN(std::int64_t memory_gib, entry.required_integer("memory_gib", 1, limits::kGpuMemoryMib / 1024));
  type.memory_mib = memory_gib * 1024;
  builder.fleet.gpu_types.push_back(std::move(type));
  return Status::ok();
}

Result<std::string> read_fleet_name(const TableReader& entry, std::string_view key) {
  HR_ASSIGN_OR_RETURN(std::string name, entry.required_string(key, limits::kFleetNameBytes));
  if (!fleet::is_valid_fleet_name(name)) {
    return entry.error(
        key, quote_for_message(name) + " is not a valid name (A-Z a-z 0-9 . _ -, starting with a letter or digit)");
  }
  return name;
}

// One [[fleet.nodes]] entry: `count` nodes alike but for their numbered names.
Status read_node_group(const Source& source, const TableReader& entry, FleetBuilder& builder) {
  HR_RETURN_IF_ERROR(entry.check_keys({"name", "count", "first", "region", "site", "cluster", "rack", "block",
                                       "nvlink_domain", "gpu_type", "gpus", "state"}));
  HR_ASSIGN_OR_RETURN(std::string name_text, entry.required_string("name", limits::kConfigPatternBytes));
  auto name_pattern = parse_pattern(name_text);
  if (!name_pattern.is_ok())
    return entry.error("name", quote_for_message(name_text) + ": " + name_pattern.status().message());
  HR_ASSIGN_OR_RETURN(auto count_opt,
                      entry.optional_integer("count", 1, static_cast<std::int64_t>(limits::kFleetNodes)));
  HR_ASSIGN_OR_RETURN(auto first_opt, entry.optional_integer("first", 0, limits::kConfigPatternFirstMax));
  const std::int64_t count = count_opt.value_or(1);
  const std::int64_t first = first_opt.value_or(1);
  if (!name_pattern->has_placeholder && count > 1) {
    return entry.error("count", "count = " + std::to_string(count) + " needs a numbered name, such as " +
                                    quote_for_message(name_text + "-{:03}") + ", to give each node its own");
  }
  if (!name_pattern->has_placeholder && first_opt) {
    return entry.error("first", "first numbers the {} in name, and name " + quote_for_message(name_text) + " has none");
  }

  fleet::Node prototype;
  HR_ASSIGN_OR_RETURN(prototype.region, read_fleet_name(entry, "region"));
  HR_ASSIGN_OR_RETURN(prototype.site, read_fleet_name(entry, "site"));
  HR_ASSIGN_OR_RETURN(prototype.cluster, read_fleet_name(entry, "cluster"));
  HR_ASSIGN_OR_RETURN(std::string gpu_type, entry.required_string("gpu_type", limits::kGpuTypeNameBytes));
  if (!builder.type_lines.contains(gpu_type)) {
    std::string declared;
    for (const fleet::GpuType& type : builder.fleet.gpu_types) declared += (declared.empty() ? "" : ", ") + type.name;
    return entry.error("gpu_type", "GPU type " + quote_for_message(gpu_type) +
                                       " is not declared in [[fleet.gpu_types]]" +
                                       (declared.empty() ? std::string() : " (declared: " + declared + ")"));
  }
  HR_ASSIGN_OR_RETURN(std::int64_t gpus,
                      entry.required_integer("gpus", 1, static_cast<std::int64_t>(limits::kGpusPerNode)));
  HR_ASSIGN_OR_RETURN(auto state, entry.optional_string("state", 16));
  if (state) {
    auto parsed = fleet::parse_node_state(*state);
    if (!parsed.is_ok()) return entry.error("state", parsed.status().message());
    prototype.state = *parsed;
  }
  HR_ASSIGN_OR_RETURN(auto rack, read_grouped_name(source, entry, "rack"));
  HR_ASSIGN_OR_RETURN(auto block, read_grouped_name(source, entry, "block"));
  HR_ASSIGN_OR_RETURN(auto nvlink_domain, read_grouped_name(source, entry, "nvlink_domain"));
  for (std::int64_t i = 0; i < gpus; ++i) {
    prototype.gpus.push_back({.index = static_cast<std::uint32_t>(i), .uuid = "", .type = gpu_type});
  }

  // Bound the expansion before it allocates.
  if (builder.fleet.nodes.size() + static_cast<std::size_t>(count) > limits::kFleetNodes) {
    return entry.error(count_opt ? "count" : "name",
                       "the fleet would have more than " + std::to_string(limits::kFleetNodes) + " nodes");
  }
  builder.gpus += static_cast<std::size_t>(count * gpus);
  if (builder.gpus > limits::kFleetGpus) {
    return entry.error(count_opt ? "count" : "gpus",
                       "the fleet would have more than " + std::to_string(limits::kFleetGpus) + " GPUs");
  }

  const std::uint32_t line = entry.table().source().begin.line;
  auto expand_grouped = [&](const std::optional<GroupedName>& grouped, std::string_view key, std::int64_t position,
                            std::string& out) -> Status {
    if (!grouped) return Status::ok();
    out = grouped->for_node(position);
    if (!fleet::is_valid_fleet_name(out)) {
      return entry.error(key, "makes " + quote_for_message(out) +
                                  ", which is not a valid name (A-Z a-z 0-9 . _ -, at most " +
                                  std::to_string(limits::kFleetNameBytes) + " bytes)");
    }
    return Status::ok();
  };
  for (std::int64_t i = 0; i < count; ++i) {
    fleet::Node node = prototype;
    node.name = name_pattern->expand(first + i);
    if (!fleet::is_valid_fleet_name(node.name)) {
      return entry.error("name", quote_for_message(name_text) + " makes " + quote_for_message(node.name) +
                                     ", which is not a valid node name (A-Z a-z 0-9 . _ -, starting with a letter or "
                                     "digit, at most " +
                                     std::to_string(limits::kFleetNameBytes) + " bytes)");
    }
    if (auto [it, inserted] = builder.node_lines.try_emplace(node.name, line); !inserted) {
      return entry.error("name", "node " + quote_for_message(node.name) + " is already declared at line " +
                                     std::to_string(it->second));
    }
    HR_RETURN_IF_ERROR(expand_grouped(rack, "rack", i, node.rack));
    HR_RETURN_IF_ERROR(expand_grouped(block, "block", i, node.block));
    node.nvlink_domain = node.name;  // an HGX node: NVLink within the node only
    HR_RETURN_IF_ERROR(expand_grouped(nvlink_domain, "nvlink_domain", i, node.nvlink_domain));
    builder.fleet.nodes.push_back(std::move(node));
  }
  return Status::ok();
}

Result<fleet::FleetSpec> read_fleet(const Source& source, const TableReader& section) {
  HR_RETURN_IF_ERROR(section.check_keys({"virtual", "gpu_types", "nodes"}));
  FleetBuilder builder;
  builder.fleet.source = "config";
  HR_ASSIGN_OR_RETURN(auto is_virtual, section.optional_bool("virtual"));
  builder.fleet.is_virtual = is_virtual.value_or(false);

  HR_ASSIGN_OR_RETURN(auto types, section.tables("gpu_types", limits::kFleetGpuTypes));
  if (types.empty()) return section.error("gpu_types", "declares no GPU types");
  for (std::size_t i = 0; i < types.size(); ++i) {
    TableReader entry(source, *types[i], section.path_of("gpu_types") + "[" + std::to_string(i) + "]");
    HR_RETURN_IF_ERROR(read_gpu_type(entry, builder));
  }

  HR_ASSIGN_OR_RETURN(auto groups, section.tables("nodes", limits::kFleetNodes));
  if (groups.empty()) return section.error("nodes", "declares no nodes");
  for (std::size_t i = 0; i < groups.size(); ++i) {
    TableReader entry(source, *groups[i], section.path_of("nodes") + "[" + std::to_string(i) + "]");
    HR_RETURN_IF_ERROR(read_node_group(source, entry, builder));
  }

  // What is left to check spans entries (a site in two regions, a domain
  // across clusters); the message names the node.
  Status valid = fleet::validate(builder.fleet);
  if (!valid.is_ok()) return Status::invalid_argument(source.name() + ": fleet: " + valid.message());
  return std::move(builder.fleet);
}

Result<ServeConfig> parse(std::string_view toml_text, std::string_view source_name) {
  const Source source(source_name);
  if (toml_text.size() > limits::kConfigFileBytes) {
    return Status::invalid_argument(source.name() + ": larger than " + std::to_string(limits::kConfigFileBytes) +
                                    " bytes");
  }
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    return Status::invalid_argument(source.where(e.source()) + ": " + std::string(e.description()));
  }

  ServeConfig config;
  config.source = std::string(source_name);
  const TableReader top(source, root, "");
  HR_RETURN_IF_ERROR(
      top.check_keys({"server", "log", "compute", "billing", "models", "gateway", "market", "fleet", "exec"}));
  HR_ASSIGN_OR_RETURN(const toml::table* exec, top.optional_table("exec"));
  if (exec) HR_RETURN_IF_ERROR(read_exec(TableReader(source, *exec, "exec"), config));
  HR_ASSIGN_OR_RETURN(const toml::table* compute, top.optional_table("compute"));
  if (compute) HR_RETURN_IF_ERROR(read_compute(TableReader(source, *compute, "compute"), config));
  HR_ASSIGN_OR_RETURN(const toml::table* billing, top.optional_table("billing"));
  if (billing) HR_RETURN_IF_ERROR(read_billing(TableReader(source, *billing, "billing"), config));
  HR_ASSIGN_OR_RETURN(const toml::table* gateway, top.optional_table("gateway"));
  if (gateway) HR_RETURN_IF_ERROR(read_gateway(TableReader(source, *gateway, "gateway"), config));
  HR_ASSIGN_OR_RETURN(const toml::table* market, top.optional_table("market"));
  if (market) HR_RETURN_IF_ERROR(read_market(TableReader(source, *market, "market"), config));
  HR_ASSIGN_OR_RETURN(const toml::table* models, top.optional_table("models"));
  if (models) HR_RETURN_IF_ERROR(read_models(TableReader(source, *models, "models"), config));
  HR_ASSIGN_OR_RETURN(const toml::table* server, top.optional_table("server"));
  if (server) HR_RETURN_IF_ERROR(read_server(TableReader(source, *server, "server"), config));
  HR_ASSIGN_OR_RETURN(const toml::table* log, top.optional_table("log"));
  if (log) HR_RETURN_IF_ERROR(read_log(TableReader(source, *log, "log"), config));
  HR_ASSIGN_OR_RETURN(const toml::table* fleet_table, top.optional_table("fleet"));
  if (fleet_table) {
    HR_ASSIGN_OR_RETURN(config.fleet, read_fleet(source, TableReader(source, *fleet_table, "fleet")));
  }
  return config;
}

}  // namespace

Result<ListenAddress> parse_listen_address(std::string_view text) {
  const std::string example = " (expected host:port, such as 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080)";
  if (text.size() > limits::kListenAddressBytes) return Status::invalid_argument("listen address is too long");
  ListenAddress address;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Status::invalid_argument(quote_for_message(text) + " is not a listen address" + example);
    }
    address.host = std::string(text.substr(1, close - 1));
    in6_addr ignored;
    if (::inet_pton(AF_INET6, address.host.c_str(), &ignored) != 1) {
      return Status::invalid_argument(quote_for_message(text) + ": " + quote_for_message(address.host) +
                                      " is not an IPv6 address");
    }
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return Status::invalid_argument(quote_for_message(text) + " has no port" + example);
    }
    address.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    if (address.host.empty()) {
      return Status::invalid_argument(quote_for_message(text) + " has no host; write 0.0.0.0" + std::string(text) +
                                      " to listen on every interface");
    }
    if (address.host.find(':') != std::string::npos) {
      return Status::invalid_argument(quote_for_message(text) + ": an IPv6 address goes in brackets, as in [::1]:8080");
    }
    const bool dotted = std::all_of(address.host.begin(), address.host.end(),
                                    [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
    in_addr ignored;
    if (dotted ? ::inet_pton(AF_INET, address.host.c_str(), &ignored) != 1 : !is_host_name(address.host)) {
      return Status::invalid_argument(quote_for_message(text) + ": " + quote_for_message(address.host) +
                                      " is not an IPv4 address or a host name");
    }
  }
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Status::invalid_argument(quote_for_message(text) + ": port " + quote_for_message(port) +
                                    " is not a number from 0 to 65535");
  }
  unsigned number = 0;
  std::from_chars(port.data(), port.data() + port.size(), number);  // at most 5 digits: cannot overflow
  if (number > 65535) {
    return Status::invalid_argument(quote_for_message(text) + ": port " + quote_for_message(port) +
                                    " is not a number from 0 to 65535");
  }
  address.port = static_cast<std::uint16_t>(number);
  return address;
}

Result<ServeConfig> parse_config(std::string_view toml_text, std::string_view source_name) {
  try {  // toml::parse_error is caught inside; what is left is allocation failure
    return parse(toml_text, source_name);
  } catch (const std::exception& e) {
    return Status::internal(std::string(source_name) + ": " + e.what());
  }
}

Result<ServeConfig> load_config_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    std::string message = "config file " + quote_for_message(path) + ": " + std::strerror(error);
    if (error == ENOENT) return Status::not_found(std::move(message));
    return Status::invalid_argument(std::move(message));
  }
  // Reads one byte past the limit to tell "exactly at" from "over".
  std::string text;
  try {
    char buffer[64 * 1024];
    for (;;) {
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int error = errno;
        ::close(fd);
        return Status::invalid_argument("config file " + quote_for_message(path) + ": " + std::strerror(error));
      }
      if (n == 0) break;
      text.append(buffer, static_cast<std::size_t>(n));
      if (text.size() > limits::kConfigFileBytes) {
        ::close(fd);
        return Status::invalid_argument("config file " + quote_for_message(path) + " is larger than " +
                                        std::to_string(limits::kConfigFileBytes) + " bytes");
      }
    }
  } catch (const std::exception& e) {
    ::close(fd);
    return Status::internal("config file " + quote_for_message(path) + ": " + e.what());
  }
  ::close(fd);
  return parse_config(text, path);
}

}  // namespace headroom::config
