#include "fleet/detect.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <map>
#include <unordered_set>

#include "common/subprocess.h"

namespace headroom::fleet {
namespace {

constexpr std::size_t kNvidiaSmiFields = 4;
constexpr std::size_t kVirtualGpus = 8;
constexpr std::int64_t kVirtualGpuMemoryMib = 80 * 1024;

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  const auto begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  const auto end = text.find_last_not_of(kSpace);
  return text.substr(begin, end - begin + 1);
}

bool is_not_available(std::string_view field) {
  return field == "[N/A]" || field == "N/A" || field == "[Not Supported]" || field == "[Unknown Error]";
}

bool is_printable(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u != 0x7f;
  });
}

template <typename Int>
bool parse_decimal(std::string_view text, Int& out) {
  if (text.empty()) return false;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size();
}

Result<DetectedGpu> parse_line(std::string_view line, std::size_t line_number) {
  const std::string where = "nvidia-smi output line " + std::to_string(line_number) + " ";
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (fields.size() <= kNvidiaSmiFields) {
    const auto comma = line.find(',', start);
    fields.push_back(
        trim(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start)));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (fields.size() != kNvidiaSmiFields) {
    return Status::invalid_argument(
        where + quote_for_message(line) +
        ": expected 4 comma-separated fields (index, uuid, name, memory.total), got " +
        (fields.size() > kNvidiaSmiFields ? std::string("more") : std::to_string(fields.size())));
  }

  DetectedGpu gpu;
  if (!parse_decimal(fields[0], gpu.index) || gpu.index >= limits::kGpusPerNode) {
    return Status::invalid_argument(where + quote_for_message(line) + ": index " + quote_for_message(fields[0]) +
                                    " is not a number from 0 to " + std::to_string(limits::kGpusPerNode - 1));
  }
  if (!is_not_available(fields[1])) {
    if (!fields[1].starts_with("GPU-") || fields[1].size() > limits::kGpuUuidBytes || !is_printable(fields[1]) ||
        fields[1].find(' ') != std::string_view::npos) {
      return Status::invalid_argument(where + quote_for_message(line) + ": uuid " + quote_for_message(fields[1]) +
                                      " is not of the form GPU-xxxxxxxx-...");
    }
    gpu.uuid = std::string(fields[1]);
  }
  if (fields[2].empty() || is_not_available(fields[2]) || fields[2].size() > limits::kGpuDisplayNameBytes ||
      !is_printable(fields[2])) {
    return Status::invalid_argument(where + quote_for_message(line) + ": name " + quote_for_message(fields[2]) +
                                    " is not a product name");
  }
  gpu.name = std::string(fields[2]);
  if (is_not_available(fields[3])) {
    return Status::invalid_argument(where + quote_for_message(line) + ": nvidia-smi does not report the GPU's memory");
  }
  if (!parse_decimal(fields[3], gpu.memory_mib) || gpu.memory_mib <= 0 || gpu.memory_mib > limits::kGpuMemoryMib) {
    return Status::invalid_argument(where + quote_for_message(line) + ": memory.total " + quote_for_message(fields[3]) +
                                    " is not a number of MiB from 1 to " + std::to_string(limits::kGpuMemoryMib));
  }
  return gpu;
}

// Words of a product name that say nothing about which GPU it is.
bool is_noise_word(std::string_view word) {
  static constexpr std::string_view kWords[] = {"nvidia", "tesla",      "geforce", "quadro", "pcie",
                                                "nvl",    "generation", "gpu",     "oam"};
  if (std::find(std::begin(kWords), std::end(kWords), word) != std::end(kWords)) return true;
  auto digits_then = [&](std::string_view prefix_letters, std::string_view suffix) {
    // prefix_letters + digits + suffix, or digits + suffix when prefix is empty.
    if (!word.starts_with(prefix_letters) || !word.ends_with(suffix)) return false;
    if (word.size() < prefix_letters.size() + suffix.size()) return false;
    const auto middle = word.substr(prefix_letters.size(), word.size() - prefix_letters.size() - suffix.size());
    return std::all_of(middle.begin(), middle.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  // "80gb", "sxm", "sxm4", "sxm5", "hbm3", "hbm3e", "hbm2e".
  if (digits_then("", "gb") && word.size() > 2) return true;
  if (digits_then("sxm", "")) return true;
  if (digits_then("hbm", "") || digits_then("hbm", "e")) return true;
  return false;
}

std::string this_host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "local";
  return name;
}

std::string first_line(std::string_view text) {
  text = trim(text);
  return std::string(text.substr(0, text.find('\n')));
}

}  // namespace

Result<std::vector<DetectedGpu>> parse_nvidia_smi_csv(std::string_view csv) {
  std::vector<DetectedGpu> gpus;
  std::unordered_set<std::uint32_t> indexes;
  std::unordered_set<std::string> uuids;
  std::size_t line_number = 0;
  std::size_t start = 0;
  while (start < csv.size()) {
    const auto newline = csv.find('\n', start);
    const auto line = csv.substr(start, newline == std::string_view::npos ? std::string_view::npos : newline - start);
    start = newline == std::string_view::npos ? csv.size() : newline + 1;
    ++line_number;
    if (trim(line).empty()) continue;
    if (newline == std::string_view::npos) {
      // nvidia-smi ends every line; a last line without its end may have been
      // cut inside a number ("81559" read as "815").
      return Status::invalid_argument("nvidia-smi output line " + std::to_string(line_number) + " " +
                                      quote_for_message(line) + " is truncated: it has no end of line");
    }
    if (gpus.size() == limits::kGpusPerNode) {
      return Status::invalid_argument("nvidia-smi lists more than " + std::to_string(limits::kGpusPerNode) + " GPUs");
    }
    HR_ASSIGN_OR_RETURN(DetectedGpu gpu, parse_line(line, line_number));
    if (!indexes.insert(gpu.index).second) {
      return Status::invalid_argument("nvidia-smi output line " + std::to_string(line_number) + ": GPU index " +
                                      std::to_string(gpu.index) + " appears twice");
    }
    if (!gpu.uuid.empty() && !uuids.insert(gpu.uuid).second) {
      return Status::invalid_argument("nvidia-smi output line " + std::to_string(line_number) + ": uuid " +
                                      quote_for_message(gpu.uuid) + " appears twice");
    }
    gpus.push_back(std::move(gpu));
  }
  if (gpus.empty()) return Status::invalid_argument("nvidia-smi lists no GPUs");
  return gpus;
}

std::string gpu_type_from_product_name(std::string_view product_name) {
  std::string type;
  std::string word;
  auto end_word = [&] {
    if (!word.empty() && !is_noise_word(word)) {
      if (!type.empty()) type += '-';
      type += word;
    }
    word.clear();
  };
  for (char c : product_name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.') {
      word += c;
    } else {
      end_word();  // spaces, '-', '_' and anything else separate words
    }
  }
  end_word();
  if (type.size() > limits::kGpuTypeNameBytes) type.resize(limits::kGpuTypeNameBytes);
  while (!type.empty() && !is_valid_gpu_type_name(type)) type.pop_back();  // a cut may leave a trailing '-'
  if (type.empty() || !is_valid_gpu_type_name(type)) return "gpu";
  return type;
}

std::string node_name_from_host_name(std::string_view host_name) {
  std::string name;
  for (char c : host_name.substr(0, limits::kFleetNameBytes)) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    name += ok ? c : '-';
  }
  while (!name.empty() && !is_valid_fleet_name(name)) name.erase(name.begin());  // a leading '-' or '.'
  return name.empty() ? "local" : name;
}

Result<FleetSpec> fleet_from_detected_gpus(std::string_view node_name, const std::vector<DetectedGpu>& gpus) {
  FleetSpec fleet;
  fleet.source = "nvidia-smi";
  Node node;
  node.name = std::string(node_name);
  node.region = node.site = node.cluster = "local";
  node.nvlink_domain = node.name;

  std::map<std::string, std::size_t> type_index;  // name -> position in fleet.gpu_types
  for (const DetectedGpu& detected : gpus) {
    std::string type_name = gpu_type_from_product_name(detected.name);
    auto [it, inserted] = type_index.try_emplace(type_name, fleet.gpu_types.size());
    if (inserted) {
      fleet.gpu_types.push_back({.name = type_name, .display_name = detected.name, .memory_mib = detected.memory_mib});
    } else {
      // Two products that normalise alike (an H100 PCIe beside an H100 SXM):
      // promise no more memory than the smallest has.
      auto& memory_mib = fleet.gpu_types[it->second].memory_mib;
      memory_mib = std::min(memory_mib, detected.memory_mib);
    }
    node.gpus.push_back({.index = detected.index, .uuid = detected.uuid, .type = std::move(type_name)});
  }
  std::sort(node.gpus.begin(), node.gpus.end(), [](const Gpu& a, const Gpu& b) { return a.index < b.index; });
  fleet.nodes.push_back(std::move(node));
  HR_RETURN_IF_ERROR(validate(fleet));
  return fleet;
}

FleetSpec virtual_local_fleet() {
  FleetSpec fleet;
  fleet.is_virtual = true;
  fleet.source = "virtual";
  fleet.gpu_types.push_back(
      {.name = "virtual", .display_name = "Virtual GPU (no hardware)", .memory_mib = kVirtualGpuMemoryMib});
  Node node;
  node.name = "local";
  node.region = node.site = node.cluster = "local";
  node.nvlink_domain = node.name;
  for (std::size_t i = 0; i < kVirtualGpus; ++i) {
    node.gpus.push_back({.index = static_cast<std::uint32_t>(i), .uuid = "", .type = "virtual"});
  }
  fleet.nodes.push_back(std::move(node));
  return fleet;
}

namespace {

Result<FleetSpec> detect(const DetectOptions& options) {
  const ProgramResult run = run_program({.program = options.nvidia_smi,
                                         .args = {std::string(kNvidiaSmiQueryArg), std::string(kNvidiaSmiFormatArg)},
                                         .timeout_ms = options.timeout_ms,
                                         .max_output_bytes = limits::kNvidiaSmiOutputBytes});
  if (run.not_found) {
    spdlog::info("{} not found; using a virtual fleet of {} GPUs (declare a real fleet in the config file)",
                 options.nvidia_smi, kVirtualGpus);
    return virtual_local_fleet();
  }
  const std::string what = options.nvidia_smi;
  const std::string remedy = "; fix the GPU driver, or declare the fleet in the config file's [fleet] section";
  if (run.timed_out) {
    return Status::unavailable(what + " did not answer within " + std::to_string(options.timeout_ms) + " ms" + remedy);
  }
  if (run.too_large) {
    return Status::unavailable(what + " printed more than " + std::to_string(limits::kNvidiaSmiOutputBytes) + " bytes" +
                               remedy);
  }
  // A lost status (the server ignores SIGCHLD) is judged by the output.
  const bool status_lost = run.ran() && !run.exit_code && run.signal == 0;
  if (!status_lost && run.exit_code.value_or(-1) != 0) {
    std::string said = run.ran() ? first_line(run.err) : run.spawn_error;
    if (said.empty()) said = first_line(run.out);
    return Status::unavailable(what + " failed (" +
                               (run.exit_code ? "exit status " + std::to_string(*run.exit_code)
                                              : std::string("could not run or was killed")) +
                               (said.empty() ? "" : ": " + quote_for_message(said)) + ")" + remedy);
  }
  auto gpus = parse_nvidia_smi_csv(run.out);
  if (!gpus.is_ok()) return gpus.status();
  const std::string node_name =
      node_name_from_host_name(options.node_name.empty() ? this_host_name() : options.node_name);
  return fleet_from_detected_gpus(node_name, *gpus);
}

}  // namespace

Result<FleetSpec> detect_local_fleet() { return detect_local_fleet(DetectOptions{}); }

Result<FleetSpec> detect_local_fleet(const DetectOptions& options) {
  try {  // only allocation can throw here; no exception escapes
    return detect(options);
  } catch (const std::exception& e) {
    return Status::internal(std::string("detecting the local fleet: ") + e.what());
  }
}

}  // namespace headroom::fleet
