// GgufFile: a GGUF model file (v2 or v3, little-endian), memory-mapped and
// checked as outside input. open() reads the header, every metadata entry
// and every tensor info, and checks each count, length, type, dimension and
// offset against the limits (gguf_limits.h) and the bytes left in the file
// before using it. A damaged or hostile file is an error Status naming what
// is wrong and at which byte, never a crash or a read past the file.
//
// The format (all integers little-endian; a string is a uint64 byte length
// and that many bytes, no terminator):
//   +------------------+-----------------------------------------------------+
//   | field            | encoding                                            |
//   +------------------+-----------------------------------------------------+
//   | magic            | "GGUF" (4 bytes)                                    |
//   | version          | uint32: 2 or 3 (v1 had 32-bit counts: refused)      |
//   | tensor_count     | uint64, <= kGgufTensors                             |
//   | metadata_count   | uint64, <= kGgufMetadataEntries                     |
//   | metadata entries | key (string), value type (uint32), value            |
//   | tensor infos     | name (string), n_dims (uint32, 1..4),               |
//   |                  | dims (uint64 each, ne0 = the contiguous one first), |
//   |                  | type (uint32, ggml's numbering), offset (uint64,    |
//   |                  | from the data section, a multiple of the alignment) |
//   | padding          | zeros up to a multiple of the alignment             |
//   | tensor data      | the data section                                    |
//   +------------------+-----------------------------------------------------+
// A value is: uint8/int8/bool (1 byte; bool 0 or 1), uint16/int16 (2),
// uint32/int32/float32 (4), uint64/int64/float64 (8), a string, or an array:
// element type (uint32), count (uint64), the elements back to back. Arrays of
// arrays are refused (ggml refuses them too). The alignment is the uint32
// general.alignment when present (a power of two, 8..kGgufAlignmentMax),
// else 32.
//
// Tensors: each has a supported type (F32, F16, BF16, Q8_0, Q4_0), 1 to 4
// dimensions each >= 1, dims[0] a multiple of the type's block, a byte size
// that does not overflow, and data inside the file that overlaps no other
// tensor's. Any other type fails open() ("unsupported tensor type", naming
// the tensor and the type), whether or not the tensor would be used: every
// tensor of an open file is usable, and a file with one tensor of a type
// the engine cannot read (a K-quant, say) cannot be opened at all.
//
// Ownership and threads: a GgufFile owns its mapping; every view it hands
// out (string_view, GgufArray, TensorView::data) points into the mapping
// and lives as long as the GgufFile. A GgufFile is immutable once opened,
// so any number of threads may read it at once. The mapping is read-only;
// a file truncated by someone else while mapped raises SIGBUS on access,
// as with any mmap reader: model files are not edited in place.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "common/check.h"
#include "common/status.h"
#include "infer/gguf/gguf_limits.h"
#include "infer/gguf/tensor_types.h"

namespace headroom::infer {

inline constexpr std::uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian uint32

enum class GgufValueType : std::uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// "uint8", ..., "float64", "string", "array"; "type N" for values outside the enum.
std::string gguf_value_type_name(GgufValueType type);
// Bytes of one value of a fixed-size type; 0 for string and array.
std::size_t gguf_value_bytes(GgufValueType type);

// The GGUF value type of a C++ type, for the typed getters and the writer.
template <typename T>
struct GgufTypeOf;
template <> struct GgufTypeOf<std::uint8_t> { static constexpr GgufValueType kType = GgufValueType::kUint8; };
template <> struct GgufTypeOf<std::int8_t> { static constexpr GgufValueType kType = GgufValueType::kInt8; };
template <> struct GgufTypeOf<std::uint16_t> { static constexpr GgufValueType kType = GgufValueType::kUint16; };
template <> struct GgufTypeOf<std::int16_t> { static constexpr GgufValueType kType = GgufValueType::kInt16; };
template <> struct GgufTypeOf<std::uint32_t> { static constexpr GgufValueType kType = GgufValueType::kUint32; };
template <> struct GgufTypeOf<std::int32_t> { static constexpr GgufValueType kType = GgufValueType::kInt32; };
template <> struct GgufTypeOf<std::uint64_t> { static constexpr GgufValueType kType = GgufValueType::kUint64; };
template <> struct GgufTypeOf<std::int64_t> { static constexpr GgufValueType kType = GgufValueType::kInt64; };
template <> struct GgufTypeOf<float> { static constexpr GgufValueType kType = GgufValueType::kFloat32; };
template <> struct GgufTypeOf<double> { static constexpr GgufValueType kType = GgufValueType::kFloat64; };
template <> struct GgufTypeOf<bool> { static constexpr GgufValueType kType = GgufValueType::kBool; };

// An array of numbers (or bools) read in place. Elements may sit at any byte
// offset in the file (strings before them have any length), so each is
// loaded with memcpy, never through a T*: no copy of the array is made.
template <typename T>
class GgufArray {
 public:
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    Iterator() = default;
    explicit Iterator(const std::uint8_t* at) : at_(at) {}
    T operator*() const { return load(at_); }
    Iterator& operator++() {
      at_ += sizeof(T);
      return *this;
    }
    Iterator operator++(int) {
      Iterator before = *this;
      ++*this;
      return before;
    }
    bool operator==(const Iterator&) const = default;

   private:
    const std::uint8_t* at_ = nullptr;
  };

  GgufArray() = default;
  GgufArray(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T operator[](std::size_t i) const {
    ASSERT(i < size_) << "index " << i << " of an array of " << size_;
    return load(data_ + i * sizeof(T));
  }
  Iterator begin() const { return Iterator(data_); }
  Iterator end() const { return Iterator(data_ + size_ * sizeof(T)); }
  // The raw little-endian bytes of the elements.
  std::span<const std::uint8_t> bytes() const { return {data_, size_ * sizeof(T)}; }

 private:
  static T load(const std::uint8_t* at) {
    if constexpr (std::is_same_v<T, bool>) {
      return *at != 0;
    } else {
      T value;
      std::memcpy(&value, at, sizeof value);
      return value;
    }
  }
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

// An array of strings read in place: the loader indexes where each string
// starts when it checks the file, so element i is O(1).
class GgufStringArray {
 public:
  GgufStringArray() = default;
  GgufStringArray(const std::uint8_t* base, std::span<const std::uint64_t> starts) : base_(base), starts_(starts) {}
  std::size_t size() const { return starts_.size(); }
  bool empty() const { return starts_.empty(); }
  std::string_view operator[](std::size_t i) const;

 private:
  const std::uint8_t* base_ = nullptr;
  std::span<const std::uint64_t> starts_;  // file offsets of each string's length prefix
};

// One metadata entry as the file holds it.
struct GgufMetadataEntry {
  std::string_view key;
  GgufValueType type;
  GgufValueType array_type;   // the element type of an array; == type otherwise
  std::uint64_t array_size;   // elements of an array; 0 otherwise
  std::uint64_t value_offset; // file offset of the value (an array's: its first element)
  std::size_t first_string;   // an array of strings: its first entry in the file's string index
};

// A tensor of an open file. dims[0] (ne0) is the contiguous dimension, as
// GGUF and ggml store them: a [64, 512] matrix is 512 rows of 64 values.
struct TensorView {
  std::string_view name;
  TensorType type;
  std::uint32_t n_dims;                          // 1..kGgufDims
  std::array<std::uint64_t, limits::kGgufDims> dims;  // 1 past n_dims
  const std::uint8_t* data;                      // in the mapping; aligned to the file's alignment
  std::uint64_t bytes;                           // of data
  std::uint64_t file_offset;                     // of data, from the start of the file

  std::span<const std::uint64_t> shape() const { return {dims.data(), n_dims}; }
  std::uint64_t elements() const { return dims[0] * dims[1] * dims[2] * dims[3]; }
  std::uint64_t rows() const { return dims[1] * dims[2] * dims[3]; }
  std::uint64_t row_bytes() const { return dims[0] / block_values(type) * block_bytes(type); }
};

// "[64, 512]"
std::string format_shape(std::span<const std::uint64_t> dims);

class GgufFile {
 public:
  // Maps and checks the file at `path`. Errors: not_found / permission_denied
  // for a file that cannot be opened, invalid_argument for one that is not a
  // valid GGUF file (the message names the path, the byte offset and what is
  // wrong), internal when mapping fails.
  static Result<std::unique_ptr<GgufFile>> open(const std::string& path);

  // Checks `bytes` as a GGUF file without copying them: the caller keeps
  // them alive and unchanged as long as the GgufFile. `name` stands for the
  // file in error messages. Used by tests and the fuzz target.
  static Result<std::unique_ptr<GgufFile>> parse(std::span<const std::uint8_t> bytes, std::string name);

  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& name() const { return name_; }  // the path, or parse()'s name
  std::uint32_t version() const { return version_; }
  std::uint32_t alignment() const { return alignment_; }
  // The start of the data section: the end of the tensor infos, aligned up
  // (past the end of the file for a file without tensors that ends unpadded).
  std::uint64_t data_offset() const { return data_offset_; }
  std::uint64_t file_bytes() const { return size_; }

  // Metadata, in file order, and lookups by key. A missing key is
  // not_found; a key of another type is invalid_argument naming the key,
  // its type and the one asked for. get<T> is strict: a uint32 is not an
  // int32; get_unsigned and get_real accept any integer / float width.
  std::span<const GgufMetadataEntry> metadata() const { return entries_; }
  const GgufMetadataEntry* find_metadata(std::string_view key) const;
  bool has(std::string_view key) const { return find_metadata(key) != nullptr; }

  template <typename T>
  Result<T> get(std::string_view key) const {
    HR_ASSIGN_OR_RETURN(const GgufMetadataEntry* entry, lookup(key, GgufTypeOf<T>::kType, GgufValueType::kUint8));
    return GgufArray<T>(base_ + entry->value_offset, 1)[0];
  }
  Result<std::string_view> get_string(std::string_view key) const;
  // Any unsigned integer, or a signed one that is >= 0.
  Result<std::uint64_t> get_unsigned(std::string_view key) const;
  // A float32 or float64.
  Result<double> get_real(std::string_view key) const;

  template <typename T>
  Result<GgufArray<T>> get_array(std::string_view key) const {
    HR_ASSIGN_OR_RETURN(const GgufMetadataEntry* entry, lookup(key, GgufValueType::kArray, GgufTypeOf<T>::kType));
    return GgufArray<T>(base_ + entry->value_offset, static_cast<std::size_t>(entry->array_size));
  }
  Result<GgufStringArray> get_string_array(std::string_view key) const;

  // The value of an entry as text, for dumps: `llama` (strings unquoted),
  // `64`, `[<unk>, <s>, ... 512 strings]` (at most `max_elements` shown).
  std::string format_value(const GgufMetadataEntry& entry, std::size_t max_elements = 8) const;

  // Tensors, in file order, and lookups by name.
  std::span<const TensorView> tensors() const { return tensors_; }
  const TensorView* find(std::string_view name) const;  // null when absent
  Result<TensorView> tensor(std::string_view name) const;  // not_found naming the tensor and the file
  // The tensor, checked to have exactly these dims (invalid_argument naming both shapes otherwise).
  Result<TensorView> tensor(std::string_view name, std::span<const std::uint64_t> dims) const;
  Result<TensorView> tensor(std::string_view name, std::initializer_list<std::uint64_t> dims) const {
    return tensor(name, std::span<const std::uint64_t>(dims.begin(), dims.size()));
  }

 private:
  class Parser;
  GgufFile(std::string name, const std::uint8_t* base, std::uint64_t size, bool mapped);
  Result<const GgufMetadataEntry*> lookup(std::string_view key, GgufValueType type, GgufValueType array_type) const;

  std::string name_;
  const std::uint8_t* base_;
  std::uint64_t size_;
  bool mapped_;  // munmap at destruction
  std::uint32_t version_ = 0;
  std::uint32_t alignment_ = limits::kGgufDefaultAlignment;
  std::uint64_t data_offset_ = 0;
  std::vector<GgufMetadataEntry> entries_;
  std::unordered_map<std::string_view, std::size_t> entry_index_;
  std::vector<std::uint64_t> string_starts_;  // all arrays of strings, back to back
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string_view, std::size_t> tensor_index_;
};

}  // namespace headroom::infer
