// GgufWriter: builds a GGUF file (the format is drawn in gguf_file.h):
// metadata in the order added, then tensor infos in the order added, then
// each tensor's data at the next multiple of the alignment, zero-padded to
// the alignment after each tensor, as ggml writes them.
//
// The writer checks what it is given against the same rules and limits the
// loader applies (gguf_limits.h), so it never writes a file GgufFile would
// refuse, and write_file() reads its file back with GgufFile to confirm it
// (asserting in pairs around durable data, STYLE.md).
//
// Tensor data comes from a Fill callback called once per tensor while the
// file is written, so a large model is never held in memory whole.
//
// Not thread-safe: one thread builds and writes a GgufWriter.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include "common/status.h"
#include "infer/gguf/gguf_file.h"
#include "infer/gguf/tensor_types.h"

namespace headroom::infer {

struct GgufWriterOptions {
  std::uint32_t version = 3;  // 2 or 3: the same layout for little-endian files
  // A power of two from kGgufAlignmentMin to kGgufAlignmentMax; written as
  // general.alignment when it differs from the default (32).
  std::uint32_t alignment = limits::kGgufDefaultAlignment;
};

class GgufWriter {
 public:
  // Fills `out` (exactly the tensor's byte size) with the tensor's data.
  using Fill = std::function<void(std::span<std::uint8_t> out)>;

  explicit GgufWriter(GgufWriterOptions options = {});
  GgufWriter(GgufWriter&&) = default;
  GgufWriter& operator=(GgufWriter&&) = default;

  // Metadata. Errors: invalid_argument for an empty or overlong key, a
  // string or array past its limit, or the key general.alignment (set by
  // the options); already_exists for a key added twice.
  template <typename T>
  Status add(std::string_view key, T value) {
    std::string encoded;
    append_scalar(encoded, value);
    return add_entry(key, GgufTypeOf<T>::kType, encoded);
  }
  Status add_string(std::string_view key, std::string_view value);
  template <typename T>
  Status add_array(std::string_view key, std::span<const T> values) {
    std::string encoded;
    append_array_header(encoded, GgufTypeOf<T>::kType, values.size());
    for (const T& value : values) append_scalar(encoded, value);
    return add_array_entry(key, GgufTypeOf<T>::kType, values.size(), encoded);
  }
  Status add_string_array(std::string_view key, std::span<const std::string> values);

  // Tensors. dims[0] is the contiguous dimension (gguf_file.h). Errors:
  // invalid_argument for an empty or overlong name, 0 or more than 4 dims,
  // a zero dimension, dims[0] not a multiple of the type's block, or data of
  // the wrong size; already_exists for a name added twice.
  Status add_tensor(std::string_view name, TensorType type, std::span<const std::uint64_t> dims, Fill fill);
  // Copies `data`, which must be the tensor's exact byte size.
  Status add_tensor(std::string_view name, TensorType type, std::span<const std::uint64_t> dims,
                    std::span<const std::uint8_t> data);

  // The size of the file write_file() writes.
  std::uint64_t file_bytes() const;

  // Writes the file to `path` + ".tmp", renames it to `path`, and reads it
  // back with GgufFile. Errors: unavailable when the file cannot be written.
  Status write_file(const std::string& path) const;
  // The whole file in memory, for tests and small files.
  std::string to_bytes() const;

 private:
  struct Tensor {
    std::string name;
    TensorType type;
    std::vector<std::uint64_t> dims;
    std::uint64_t bytes;
    std::uint64_t offset;  // in the data section
    Fill fill;
  };

  template <typename T>
  static void append_scalar(std::string& out, T value) {
    if constexpr (std::is_same_v<T, bool>) {
      out.push_back(value ? '\1' : '\0');
    } else {
      char bytes[sizeof(T)];
      std::memcpy(bytes, &value, sizeof value);
      out.append(bytes, sizeof bytes);
    }
  }
  static void append_array_header(std::string& out, GgufValueType type, std::uint64_t count);
  Status add_entry(std::string_view key, GgufValueType type, std::string_view encoded_value);
  Status add_array_entry(std::string_view key, GgufValueType type, std::uint64_t count, std::string_view encoded);
  Status check_key(std::string_view key) const;
  // The byte size of a tensor that may be added.
  Result<std::uint64_t> check_tensor(std::string_view name, TensorType type, std::span<const std::uint64_t> dims) const;
  // Writes the file through `sink`, which returns false on failure.
  bool write(const std::function<bool(std::string_view)>& sink) const;
  std::string header_bytes() const;
  // Checks a file this writer wrote, as read back.
  void verify(const GgufFile& file) const;

  GgufWriterOptions options_;
  std::vector<std::string> keys_;
  std::string metadata_;  // the encoded entries, back to back
  std::unordered_set<std::string> key_set_;
  std::vector<Tensor> tensors_;
  std::unordered_set<std::string> tensor_names_;
  std::uint64_t data_bytes_ = 0;  // the data section, padded
};

}  // namespace headroom::infer
