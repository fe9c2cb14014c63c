// gguf_generate: writes a deterministic random-weight llama model as GGUF
// (src/infer/gguf/random_llama.h), for tests and benchmarks; or dumps any
// GGUF file's metadata and tensors.
//
//   gguf_generate [options] OUT.gguf
//   gguf_generate --dump FILE.gguf
//
// The defaults are stories260K's shape. Exit codes: 0 done, 1 the model or
// the file was refused (the message says why), 2 a bad command line.
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "infer/gguf/gguf_file.h"
#include "infer/gguf/random_llama.h"

using namespace headroom;
using namespace headroom::infer;

namespace {

constexpr std::string_view kUsage = R"(usage: gguf_generate [options] OUT.gguf
       gguf_generate --dump FILE.gguf

Writes a llama model with deterministic random weights (the defaults are
stories260K's shape), then reads it back and prints a summary.

  --vocab N            vocabulary size, >= 259 (512)
  --dim N              llama.embedding_length (64)
  --hidden N           llama.feed_forward_length (172)
  --layers N           llama.block_count (5)
  --heads N            llama.attention.head_count (8)
  --kv-heads N         llama.attention.head_count_kv (4)
  --context N          llama.context_length (2048)
  --rope-base X        llama.rope.freq_base (10000)
  --eps X              llama.attention.layer_norm_rms_epsilon (1e-5)
  --type T             matrix weights: f32, f16, bf16, q8_0, q4_0 (f32); norms stay f32
  --tied               no output.weight (the output reuses token_embd.weight)
  --seed N             (1)
  --name S             general.name
  --gguf-version N     2 or 3 (3)
  --alignment N        a power of two, 8..65536 (32)
  --every-value-type   add headroom.sample.* metadata of every GGUF value type
  --dump FILE          print FILE's metadata and tensors instead
)";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "gguf_generate: %s\n\n%s", message.c_str(), kUsage.data());
  std::exit(2);
}

template <typename T>
T parse_number(std::string_view flag, std::string_view text) {
  T value{};
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) {
    usage_error(std::string(flag) + " takes a number, not '" + std::string(text) + "'");
  }
  return value;
}

TensorType parse_type(std::string_view text) {
  for (TensorType type : {TensorType::kF32, TensorType::kF16, TensorType::kBF16, TensorType::kQ8_0,
                          TensorType::kQ4_0}) {
    if (tensor_type_name(type) == text) return type;
  }
  usage_error("--type is one of f32, f16, bf16, q8_0, q4_0, not '" + std::string(text) + "'");
}

int dump(const std::string& path) {
  auto file = GgufFile::open(path);
  if (!file) {
    std::fprintf(stderr, "gguf_generate: %s\n", file.status().to_string().c_str());
    return 1;
  }
  const GgufFile& f = **file;
  std::printf("%s: GGUF v%u, %llu bytes, alignment %u, data at byte %llu\n", path.c_str(), f.version(),
              static_cast<unsigned long long>(f.file_bytes()), f.alignment(),
              static_cast<unsigned long long>(f.data_offset()));
  std::printf("%zu metadata entries:\n", f.metadata().size());
  for (const GgufMetadataEntry& entry : f.metadata()) {
    const std::string type = entry.type == GgufValueType::kArray
                                 ? "array of " + gguf_value_type_name(entry.array_type)
                                 : gguf_value_type_name(entry.type);
    std::printf("  %.*s (%s) = %s\n", static_cast<int>(entry.key.size()), entry.key.data(), type.c_str(),
                f.format_value(entry).c_str());
  }
  std::printf("%zu tensors:\n", f.tensors().size());
  for (const TensorView& t : f.tensors()) {
    std::printf("  %-28.*s %-5s %-14s %10llu bytes at %llu\n", static_cast<int>(t.name.size()), t.name.data(),
                std::string(tensor_type_name(t.type)).c_str(), format_shape(t.shape()).c_str(),
                static_cast<unsigned long long>(t.bytes), static_cast<unsigned long long>(t.file_offset));
  }
  return 0;
}

int generate(const RandomLlamaOptions& options, const std::string& path) {
  if (Status status = write_random_llama(options, path); !status) {
    std::fprintf(stderr, "gguf_generate: %s\n", status.to_string().c_str());
    return 1;
  }
  auto file = GgufFile::open(path);  // write_random_llama() checked it; this counts what it holds
  if (!file) {
    std::fprintf(stderr, "gguf_generate: %s\n", file.status().to_string().c_str());
    return 1;
  }
  std::uint64_t parameters = 0;
  for (const TensorView& t : (*file)->tensors()) parameters += t.elements();
  std::printf("%s: llama, %llu parameters, %s weights, %zu tensors, %llu bytes (seed %llu)\n", path.c_str(),
              static_cast<unsigned long long>(parameters), std::string(tensor_type_name(options.weight_type)).c_str(),
              (*file)->tensors().size(), static_cast<unsigned long long>((*file)->file_bytes()),
              static_cast<unsigned long long>(options.seed));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  RandomLlamaOptions options;
  std::string out, dump_path;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage_error(std::string(flag) + " needs a value");
      return argv[++i];
    };
    if (flag == "--help" || flag == "-h") {
      std::printf("%s", kUsage.data());
      return 0;
    } else if (flag == "--vocab") options.vocab_size = parse_number<std::uint32_t>(flag, value());
    else if (flag == "--dim") options.dim = parse_number<std::uint32_t>(flag, value());
    else if (flag == "--hidden") options.hidden_dim = parse_number<std::uint32_t>(flag, value());
    else if (flag == "--layers") options.n_layers = parse_number<std::uint32_t>(flag, value());
    else if (flag == "--heads") options.n_heads = parse_number<std::uint32_t>(flag, value());
    else if (flag == "--kv-heads") options.n_kv_heads = parse_number<std::uint32_t>(flag, value());
    else if (flag == "--context") options.context_length = parse_number<std::uint32_t>(flag, value());
    else if (flag == "--rope-base") options.rope_freq_base = parse_number<float>(flag, value());
    else if (flag == "--eps") options.rms_norm_eps = parse_number<float>(flag, value());
    else if (flag == "--type") options.weight_type = parse_type(value());
    else if (flag == "--tied") options.output = OutputWeights::kTied;
    else if (flag == "--seed") options.seed = parse_number<std::uint64_t>(flag, value());
    else if (flag == "--name") options.name = value();
    else if (flag == "--gguf-version") options.format.version = parse_number<std::uint32_t>(flag, value());
    else if (flag == "--alignment") options.format.alignment = parse_number<std::uint32_t>(flag, value());
    else if (flag == "--every-value-type") options.extra = ExtraMetadata::kEveryValueType;
    else if (flag == "--dump") dump_path = value();
    else if (flag.starts_with("-")) usage_error("unknown option " + std::string(flag));
    else if (out.empty()) out = flag;
    else usage_error("one output file, not '" + out + "' and '" + std::string(flag) + "'");
  }
  if (!dump_path.empty()) return dump(dump_path);
  if (out.empty()) usage_error("no output file");
  // GgufWriter takes its options as a programmer's, so the command line's are checked here.
  if (options.format.version != 2 && options.format.version != 3) usage_error("--gguf-version is 2 or 3");
  const std::uint32_t alignment = options.format.alignment;
  if ((alignment & (alignment - 1)) != 0 || alignment < limits::kGgufAlignmentMin ||
      alignment > limits::kGgufAlignmentMax) {
    usage_error("--alignment is a power of two from 8 to 65536");
  }
  return generate(options, out);
}
