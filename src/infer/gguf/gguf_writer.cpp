#include "infer/gguf/gguf_writer.h"

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

namespace headroom::infer {
namespace {

constexpr std::string_view kAlignmentKey = "general.alignment";

void append_u32(std::string& out, std::uint32_t value) {
  char bytes[sizeof value];
  std::memcpy(bytes, &value, sizeof value);
  out.append(bytes, sizeof bytes);
}

void append_u64(std::string& out, std::uint64_t value) {
  char bytes[sizeof value];
  std::memcpy(bytes, &value, sizeof value);
  out.append(bytes, sizeof bytes);
}

void append_string(std::string& out, std::string_view text) {
  append_u64(out, text.size());
  out.append(text);
}

std::uint64_t align_up(std::uint64_t value, std::uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

}  // namespace

GgufWriter::GgufWriter(GgufWriterOptions options) : options_(options) {
  CHECK(options_.version == 2 || options_.version == 3) << "GGUF version " << options_.version;
  CHECK(std::has_single_bit(options_.alignment) && options_.alignment >= limits::kGgufAlignmentMin &&
        options_.alignment <= limits::kGgufAlignmentMax)
      << "alignment " << options_.alignment;
}

void GgufWriter::append_array_header(std::string& out, GgufValueType type, std::uint64_t count) {
  append_u32(out, static_cast<std::uint32_t>(type));
  append_u64(out, count);
}

Status GgufWriter::check_key(std::string_view key) const {
  if (key.empty()) return Status::invalid_argument("a GGUF metadata key is empty");
  if (key.size() > limits::kGgufKeyBytes) {
    return Status::invalid_argument(
        fmt::format("metadata key of {} bytes, more than the limit of {}", key.size(), limits::kGgufKeyBytes));
  }
  if (key == kAlignmentKey) {
    return Status::invalid_argument("general.alignment is written from GgufWriterOptions::alignment");
  }
  if (key_set_.contains(std::string(key))) {
    return Status::already_exists(fmt::format("metadata key '{}' added twice", key));
  }
  if (keys_.size() + 1 >= limits::kGgufMetadataEntries) {  // one spare for general.alignment
    return Status::invalid_argument(fmt::format("more than {} metadata entries", limits::kGgufMetadataEntries - 1));
  }
  return Status::ok();
}

Status GgufWriter::add_entry(std::string_view key, GgufValueType type, std::string_view encoded_value) {
  HR_RETURN_IF_ERROR(check_key(key));
  append_string(metadata_, key);
  append_u32(metadata_, static_cast<std::uint32_t>(type));
  metadata_.append(encoded_value);
  keys_.emplace_back(key);
  key_set_.emplace(key);
  return Status::ok();
}

Status GgufWriter::add_array_entry(std::string_view key, GgufValueType type, std::uint64_t count,
                                   std::string_view encoded) {
  if (count > limits::kGgufArrayLength) {
    return Status::invalid_argument(fmt::format("metadata key '{}': an array of {} {}s, more than the limit of {}",
                                                key, count, gguf_value_type_name(type), limits::kGgufArrayLength));
  }
  return add_entry(key, GgufValueType::kArray, encoded);
}

Status GgufWriter::add_string(std::string_view key, std::string_view value) {
  if (value.size() > limits::kGgufStringBytes) {
    return Status::invalid_argument(fmt::format("metadata key '{}': a string of {} bytes, more than the limit of {}",
                                                key, value.size(), limits::kGgufStringBytes));
  }
  std::string encoded;
  append_string(encoded, value);
  return add_entry(key, GgufValueType::kString, encoded);
}

Status GgufWriter::add_string_array(std::string_view key, std::span<const std::string> values) {
  std::string encoded;
  append_array_header(encoded, GgufValueType::kString, values.size());
  for (const std::string& value : values) {
    if (value.size() > limits::kGgufStringBytes) {
      return Status::invalid_argument(fmt::format("metadata key '{}': a string of {} bytes, more than the limit of {}",
                                                  key, value.size(), limits::kGgufStringBytes));
    }
    append_string(encoded, value);
  }
  return add_array_entry(key, GgufValueType::kString, values.size(), encoded);
}

Result<std::uint64_t> GgufWriter::check_tensor(std::string_view name, TensorType type,
                                               std::span<const std::uint64_t> dims) const {
  if (name.empty()) return Status::invalid_argument("a tensor name is empty");
  if (name.size() > limits::kGgufTensorNameBytes) {
    return Status::invalid_argument(fmt::format("tensor name '{}' is {} bytes, more than the limit of {}", name,
                                                name.size(), limits::kGgufTensorNameBytes));
  }
  if (tensor_names_.contains(std::string(name))) {
    return Status::already_exists(fmt::format("tensor '{}' added twice", name));
  }
  if (tensors_.size() >= limits::kGgufTensors) {
    return Status::invalid_argument(fmt::format("more than {} tensors", limits::kGgufTensors));
  }
  if (dims.empty() || dims.size() > limits::kGgufDims) {
    return Status::invalid_argument(fmt::format("tensor '{}' has {} dimensions, not 1 to {}", name, dims.size(),
                                                limits::kGgufDims));
  }
  std::uint64_t elements = 1;
  for (std::uint64_t dim : dims) {
    if (dim == 0 || __builtin_mul_overflow(elements, dim, &elements) || elements > limits::kGgufDimMax) {
      return Status::invalid_argument(fmt::format("tensor '{}' has shape {}", name, format_shape(dims)));
    }
  }
  if (dims[0] % block_values(type) != 0) {
    return Status::invalid_argument(fmt::format("tensor '{}' is {} with {} values per row, not a multiple of {}",
                                                name, tensor_type_name(type), dims[0], block_values(type)));
  }
  std::uint64_t bytes;
  std::uint64_t data_bytes;
  if (__builtin_mul_overflow(elements / block_values(type), block_bytes(type), &bytes) ||
      __builtin_add_overflow(data_bytes_, align_up(bytes, options_.alignment), &data_bytes) ||
      data_bytes > limits::kGgufDimMax) {
    return Status::invalid_argument(fmt::format("tensor '{}' has shape {}: too large", name, format_shape(dims)));
  }
  return bytes;
}

Status GgufWriter::add_tensor(std::string_view name, TensorType type, std::span<const std::uint64_t> dims, Fill fill) {
  HR_ASSIGN_OR_RETURN(std::uint64_t bytes, check_tensor(name, type, dims));
  tensors_.push_back(Tensor{.name = std::string(name), .type = type, .dims = {dims.begin(), dims.end()},
                            .bytes = bytes, .offset = data_bytes_, .fill = std::move(fill)});
  tensor_names_.emplace(name);
  data_bytes_ += align_up(bytes, options_.alignment);
  return Status::ok();
}

Status GgufWriter::add_tensor(std::string_view name, TensorType type, std::span<const std::uint64_t> dims,
                              std::span<const std::uint8_t> data) {
  HR_ASSIGN_OR_RETURN(std::uint64_t bytes, check_tensor(name, type, dims));
  if (bytes != data.size()) {
    return Status::invalid_argument(fmt::format("tensor '{}' of shape {} ({}) takes {} bytes, not {}", name,
                                                format_shape(dims), tensor_type_name(type), bytes, data.size()));
  }
  auto copy = std::make_shared<std::vector<std::uint8_t>>(data.begin(), data.end());
  return add_tensor(name, type, dims, [copy](std::span<std::uint8_t> out) {
    CHECK(out.size() == copy->size());
    std::memcpy(out.data(), copy->data(), out.size());
  });
}

std::string GgufWriter::header_bytes() const {
  const bool write_alignment = options_.alignment != limits::kGgufDefaultAlignment;
  std::string out;
  append_u32(out, kGgufMagic);
  append_u32(out, options_.version);
  append_u64(out, tensors_.size());
  append_u64(out, keys_.size() + (write_alignment ? 1 : 0));
  if (write_alignment) {
    append_string(out, kAlignmentKey);
    append_u32(out, static_cast<std::uint32_t>(GgufValueType::kUint32));
    append_u32(out, options_.alignment);
  }
  out += metadata_;
  for (const Tensor& tensor : tensors_) {
    append_string(out, tensor.name);
    append_u32(out, static_cast<std::uint32_t>(tensor.dims.size()));
    for (std::uint64_t dim : tensor.dims) append_u64(out, dim);
    append_u32(out, static_cast<std::uint32_t>(tensor.type));
    append_u64(out, tensor.offset);
  }
  out.resize(align_up(out.size(), options_.alignment), '\0');
  return out;
}

std::uint64_t GgufWriter::file_bytes() const { return header_bytes().size() + data_bytes_; }

bool GgufWriter::write(const std::function<bool(std::string_view)>& sink) const {
  if (!sink(header_bytes())) return false;
  std::vector<std::uint8_t> buffer;
  for (const Tensor& tensor : tensors_) {
    buffer.assign(align_up(tensor.bytes, options_.alignment), 0);
    tensor.fill(std::span<std::uint8_t>(buffer.data(), tensor.bytes));
    if (!sink({reinterpret_cast<const char*>(buffer.data()), buffer.size()})) return false;
  }
  return true;
}

void GgufWriter::verify(const GgufFile& file) const {
  const bool write_alignment = options_.alignment != limits::kGgufDefaultAlignment;
  CHECK(file.version() == options_.version && file.alignment() == options_.alignment) << file.name();
  CHECK(file.metadata().size() == keys_.size() + (write_alignment ? 1 : 0)) << file.name();
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    CHECK(file.metadata()[i + (write_alignment ? 1 : 0)].key == keys_[i]) << file.name() << ": key " << keys_[i];
  }
  CHECK(file.tensors().size() == tensors_.size()) << file.name();
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    const TensorView& read = file.tensors()[i];
    const Tensor& written = tensors_[i];
    CHECK(read.name == written.name && read.type == written.type && read.bytes == written.bytes &&
          read.file_offset == file.data_offset() + written.offset &&
          std::equal(read.shape().begin(), read.shape().end(), written.dims.begin(), written.dims.end()))
        << file.name() << ": tensor " << written.name;
  }
  CHECK(file.file_bytes() == file.data_offset() + data_bytes_ || tensors_.empty()) << file.name();
}

std::string GgufWriter::to_bytes() const {
  std::string out;
  out.reserve(file_bytes());
  CHECK(write([&out](std::string_view bytes) {
    out.append(bytes);
    return true;
  }));
  auto file = GgufFile::parse({reinterpret_cast<const std::uint8_t*>(out.data()), out.size()}, "GgufWriter");
  CHECK(file.is_ok()) << file.status().to_string();
  verify(**file);
  return out;
}

Status GgufWriter::write_file(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  std::FILE* out = std::fopen(tmp.c_str(), "wb");
  if (out == nullptr) {
    return Status::unavailable(fmt::format("{}: cannot create: {}", tmp, std::strerror(errno)));
  }
  const bool written = write([out](std::string_view bytes) {
    return std::fwrite(bytes.data(), 1, bytes.size(), out) == bytes.size();
  });
  const int write_error = errno;
  if (std::fclose(out) != 0 || !written) {
    std::remove(tmp.c_str());
    return Status::unavailable(fmt::format("{}: cannot write: {}", tmp, std::strerror(write_error)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    std::remove(tmp.c_str());
    return Status::unavailable(fmt::format("{}: cannot rename to {}: {}", tmp, path, std::strerror(error)));
  }
  auto file = GgufFile::open(path);
  if (!file) return Status::internal("a written GGUF file does not read back: " + file.status().message());
  verify(**file);
  return Status::ok();
}

}  // namespace headroom::infer
