#include "infer/gguf/gguf_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <numeric>

#include <fmt/format.h>

#include "common/text.h"

namespace headroom::infer {
namespace {

constexpr std::uint32_t kLastValueType = static_cast<std::uint32_t>(GgufValueType::kFloat64);

// ggml's names for its type ids, so that a file with a type the engine does
// not read says which one it has.
std::string ggml_type_label(std::uint32_t id) {
  static constexpr std::string_view kNames[] = {
      "f32",     "f16",   "q4_0",   "q4_1", "",     "",      "q5_0",   "q5_1",   "q8_0",    "q8_1",
      "q2_k",    "q3_k",  "q4_k",   "q5_k", "q6_k", "q8_k",  "iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s",
      "iq4_nl",  "iq3_s", "iq2_s",  "iq4_xs", "i8", "i16",   "i32",    "i64",    "f64",     "iq1_m",
      "bf16",    "",      "",       "",     "tq1_0", "tq2_0", "",      "",       "",        "mxfp4"};
  if (id < std::size(kNames) && !kNames[id].empty()) return fmt::format("{} ({})", kNames[id], id);
  return fmt::format("{} (not a ggml type)", id);
}

// A name from the file, safe to put in a message: valid UTF-8, quoted, cut short.
std::string quoted(std::string_view text) {
  constexpr std::size_t kShown = 80;
  if (text.size() <= kShown) return fmt::format("'{}'", to_valid_utf8(text));
  return fmt::format("'{}...'", to_valid_utf8(text.substr(0, kShown)));
}

std::uint64_t load_u64(const std::uint8_t* at) {
  std::uint64_t value;
  std::memcpy(&value, at, sizeof value);
  return value;
}

bool is_valid_value_type(std::uint32_t type) { return type <= kLastValueType; }

}  // namespace

std::string gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8: return "uint8";
    case GgufValueType::kInt8: return "int8";
    case GgufValueType::kUint16: return "uint16";
    case GgufValueType::kInt16: return "int16";
    case GgufValueType::kUint32: return "uint32";
    case GgufValueType::kInt32: return "int32";
    case GgufValueType::kFloat32: return "float32";
    case GgufValueType::kBool: return "bool";
    case GgufValueType::kString: return "string";
    case GgufValueType::kArray: return "array";
    case GgufValueType::kUint64: return "uint64";
    case GgufValueType::kInt64: return "int64";
    case GgufValueType::kFloat64: return "float64";
  }
  return fmt::format("type {}", static_cast<std::uint32_t>(type));
}

std::size_t gguf_value_bytes(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool: return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16: return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32: return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64: return 8;
    case GgufValueType::kString:
    case GgufValueType::kArray: return 0;
  }
  return 0;
}

std::string format_shape(std::span<const std::uint64_t> dims) {
  std::string out = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(dims[i]);
  }
  return out + "]";
}

std::string_view GgufStringArray::operator[](std::size_t i) const {
  ASSERT(i < starts_.size()) << "index " << i << " of an array of " << starts_.size();
  const std::uint8_t* at = base_ + starts_[i];
  return {reinterpret_cast<const char*>(at + 8), static_cast<std::size_t>(load_u64(at))};
}

// Reads the file front to back with a cursor that never moves past the end:
// every read first checks that its bytes are there.
class GgufFile::Parser {
 public:
  explicit Parser(GgufFile& file) : file_(file), size_(file.size_) {}

  Status run() {
    HR_RETURN_IF_ERROR(parse_header());
    for (std::uint64_t i = 0; i < metadata_count_; ++i) HR_RETURN_IF_ERROR(parse_entry(i));
    HR_RETURN_IF_ERROR(parse_alignment());
    for (std::uint64_t i = 0; i < tensor_count_; ++i) HR_RETURN_IF_ERROR(parse_tensor_info(i));
    return check_tensor_data();
  }

 private:
  Status fail(std::uint64_t at, std::string_view what) const {
    return Status::invalid_argument(fmt::format("{}: {} (at byte {})", file_.name_, what, at));
  }
  std::uint64_t left() const { return size_ - pos_; }
  Status need(std::uint64_t bytes, std::string_view what) const {
    if (bytes <= left()) return Status::ok();
    return fail(pos_, fmt::format("truncated: {} needs {} bytes, {} left in the file", what, bytes, left()));
  }
  template <typename T>
  Result<T> read(std::string_view what) {
    HR_RETURN_IF_ERROR(need(sizeof(T), what));
    T value;
    std::memcpy(&value, file_.base_ + pos_, sizeof value);
    pos_ += sizeof value;
    return value;
  }
  // A string: its uint64 length, at most `max_bytes`, then its bytes.
  Result<std::string_view> read_string(std::string_view what, std::uint64_t max_bytes) {
    const std::uint64_t at = pos_;
    HR_ASSIGN_OR_RETURN(std::uint64_t length, read<std::uint64_t>(fmt::format("the length of {}", what)));
    if (length > max_bytes) {
      return fail(at, fmt::format("{} is {} bytes long, more than the limit of {}", what, length, max_bytes));
    }
    HR_RETURN_IF_ERROR(need(length, what));
    std::string_view text(reinterpret_cast<const char*>(file_.base_ + pos_), static_cast<std::size_t>(length));
    pos_ += length;
    return text;
  }

  // read_string() without a description, for the many strings of an array:
  // false, and the cursor unmoved, where read_string() would fail.
  bool skip_string(std::uint64_t max_bytes) {
    if (left() < 8) return false;
    const std::uint64_t length = load_u64(file_.base_ + pos_);
    if (length > max_bytes || length > left() - 8) return false;
    pos_ += 8 + length;
    return true;
  }

  Status parse_header() {
    if (size_ < 4) return fail(0, fmt::format("{} bytes is too short for a GGUF file", size_));
    HR_ASSIGN_OR_RETURN(std::uint32_t magic, read<std::uint32_t>("the magic"));
    if (magic != kGgufMagic) return fail(0, fmt::format("not a GGUF file (magic {:#010x})", magic));
    HR_ASSIGN_OR_RETURN(std::uint32_t version, read<std::uint32_t>("the version"));
    if (version == 1) return fail(4, "GGUF version 1 is not supported (versions 2 and 3 are)");
    if (__builtin_bswap32(version) == 2 || __builtin_bswap32(version) == 3) {
      return fail(4, "a big-endian GGUF file is not supported");
    }
    if (version != 2 && version != 3) return fail(4, fmt::format("unknown GGUF version {}", version));
    file_.version_ = version;

    HR_ASSIGN_OR_RETURN(tensor_count_, read<std::uint64_t>("the tensor count"));
    if (tensor_count_ > limits::kGgufTensors) {
      return fail(8, fmt::format("{} tensors, more than the limit of {}", tensor_count_, limits::kGgufTensors));
    }
    HR_ASSIGN_OR_RETURN(metadata_count_, read<std::uint64_t>("the metadata count"));
    if (metadata_count_ > limits::kGgufMetadataEntries) {
      return fail(16, fmt::format("{} metadata entries, more than the limit of {}", metadata_count_,
                                  limits::kGgufMetadataEntries));
    }
    // The smallest entry is a 1-byte key and a 1-byte value (14 bytes), the
    // smallest tensor info a 1-byte name and one dimension (33): counts that
    // cannot fit are refused before anything is sized by them.
    constexpr std::uint64_t kEntryBytesMin = 8 + 1 + 4 + 1;
    constexpr std::uint64_t kTensorInfoBytesMin = 8 + 1 + 4 + 8 + 4 + 8;
    static_assert(limits::kGgufTensors * kTensorInfoBytesMin + limits::kGgufMetadataEntries * kEntryBytesMin <
                  (1ULL << 62), "the check below cannot overflow");
    if (metadata_count_ * kEntryBytesMin + tensor_count_ * kTensorInfoBytesMin > left()) {
      return fail(8, fmt::format("{} metadata entries and {} tensors cannot fit in the {} bytes left", metadata_count_,
                                 tensor_count_, left()));
    }
    file_.entries_.reserve(metadata_count_);
    file_.tensors_.reserve(tensor_count_);
    return Status::ok();
  }

  Status parse_entry(std::uint64_t index) {
    const std::uint64_t at = pos_;
    HR_ASSIGN_OR_RETURN(std::string_view key,
                        read_string(fmt::format("the key of metadata entry {}", index), limits::kGgufKeyBytes));
    if (key.empty()) return fail(at, fmt::format("metadata entry {} has an empty key", index));
    const std::string what = fmt::format("metadata entry {} ({})", index, quoted(key));
    GgufMetadataEntry entry{.key = key, .type = GgufValueType::kUint8, .array_type = GgufValueType::kUint8,
                            .array_size = 0, .value_offset = 0, .first_string = 0};

    const std::uint64_t type_at = pos_;
    HR_ASSIGN_OR_RETURN(std::uint32_t type, read<std::uint32_t>(fmt::format("the value type of {}", what)));
    if (!is_valid_value_type(type)) return fail(type_at, fmt::format("{} has value type {}, not a GGUF type", what, type));
    entry.type = entry.array_type = static_cast<GgufValueType>(type);

    if (entry.type == GgufValueType::kArray) {
      const std::uint64_t element_at = pos_;
      HR_ASSIGN_OR_RETURN(std::uint32_t element, read<std::uint32_t>(fmt::format("the element type of {}", what)));
      if (!is_valid_value_type(element)) {
        return fail(element_at, fmt::format("{} is an array of type {}, not a GGUF type", what, element));
      }
      entry.array_type = static_cast<GgufValueType>(element);
      if (entry.array_type == GgufValueType::kArray) {
        return fail(element_at, fmt::format("{} is an array of arrays, which is not supported", what));
      }
      const std::uint64_t count_at = pos_;
      HR_ASSIGN_OR_RETURN(entry.array_size, read<std::uint64_t>(fmt::format("the length of {}", what)));
      if (entry.array_size > limits::kGgufArrayLength) {
        return fail(count_at, fmt::format("{} has {} elements, more than the limit of {}", what, entry.array_size,
                                          limits::kGgufArrayLength));
      }
      entry.value_offset = pos_;
      if (entry.array_type == GgufValueType::kString) {
        // Each string takes at least its 8-byte length: a count that cannot fit is refused before the index grows.
        if (entry.array_size > left() / 8) {
          return fail(count_at, fmt::format("{} has {} strings, which cannot fit in the {} bytes left", what,
                                            entry.array_size, left()));
        }
        // No reserve(): many small arrays would each copy the index (quadratic); push_back grows it geometrically.
        entry.first_string = file_.string_starts_.size();
        for (std::uint64_t i = 0; i < entry.array_size; ++i) {
          const std::uint64_t start = pos_;
          if (!skip_string(limits::kGgufStringBytes)) {  // read it again to say why, naming it
            HR_RETURN_IF_ERROR(read_string(fmt::format("string {} of {}", i, what), limits::kGgufStringBytes).status());
            CHECK(false) << "skip_string() and read_string() disagree at byte " << start;
          }
          file_.string_starts_.push_back(start);
        }
      } else {
        const std::uint64_t bytes = entry.array_size * gguf_value_bytes(entry.array_type);  // <= 2^24 * 8
        HR_RETURN_IF_ERROR(need(bytes, fmt::format("the {} elements of {}", entry.array_size, what)));
        if (entry.array_type == GgufValueType::kBool) HR_RETURN_IF_ERROR(check_bools(bytes, what));
        pos_ += bytes;
      }
    } else if (entry.type == GgufValueType::kString) {
      entry.value_offset = pos_;
      HR_RETURN_IF_ERROR(read_string(fmt::format("the value of {}", what), limits::kGgufStringBytes).status());
    } else {
      entry.value_offset = pos_;
      const std::uint64_t bytes = gguf_value_bytes(entry.type);
      HR_RETURN_IF_ERROR(need(bytes, fmt::format("the value of {}", what)));
      if (entry.type == GgufValueType::kBool) HR_RETURN_IF_ERROR(check_bools(bytes, what));
      pos_ += bytes;
    }

    if (!file_.entry_index_.emplace(key, file_.entries_.size()).second) {
      return fail(at, fmt::format("metadata key {} appears twice", quoted(key)));
    }
    file_.entries_.push_back(entry);
    return Status::ok();
  }

  // Bools are one byte, 0 or 1; the spec asks readers to refuse anything else.
  Status check_bools(std::uint64_t count, std::string_view what) const {
    for (std::uint64_t i = 0; i < count; ++i) {
      const std::uint8_t byte = file_.base_[pos_ + i];
      if (byte > 1) return fail(pos_ + i, fmt::format("{} holds the bool value {}, not 0 or 1", what, byte));
    }
    return Status::ok();
  }

  Status parse_alignment() {
    const GgufMetadataEntry* entry = file_.find_metadata("general.alignment");
    if (entry == nullptr) return Status::ok();
    if (entry->type != GgufValueType::kUint32) {
      return fail(entry->value_offset,
                  fmt::format("general.alignment is {}, not uint32", gguf_value_type_name(entry->type)));
    }
    std::uint32_t alignment;
    std::memcpy(&alignment, file_.base_ + entry->value_offset, sizeof alignment);
    if (!std::has_single_bit(alignment) || alignment < limits::kGgufAlignmentMin ||
        alignment > limits::kGgufAlignmentMax) {
      return fail(entry->value_offset, fmt::format("general.alignment is {}, not a power of two from {} to {}",
                                                   alignment, limits::kGgufAlignmentMin, limits::kGgufAlignmentMax));
    }
    file_.alignment_ = alignment;
    return Status::ok();
  }

  Status parse_tensor_info(std::uint64_t index) {
    const std::uint64_t at = pos_;
    HR_ASSIGN_OR_RETURN(std::string_view name,
                        read_string(fmt::format("the name of tensor {}", index), limits::kGgufTensorNameBytes));
    if (name.empty()) return fail(at, fmt::format("tensor {} has an empty name", index));
    const std::string what = fmt::format("tensor {} ({})", index, quoted(name));

    const std::uint64_t dims_at = pos_;
    HR_ASSIGN_OR_RETURN(std::uint32_t n_dims, read<std::uint32_t>(fmt::format("the dimension count of {}", what)));
    if (n_dims < 1 || n_dims > limits::kGgufDims) {
      return fail(dims_at, fmt::format("{} has {} dimensions, not 1 to {}", what, n_dims, limits::kGgufDims));
    }
    TensorView tensor{.name = name, .type = TensorType::kF32, .n_dims = n_dims, .dims = {1, 1, 1, 1},
                      .data = nullptr, .bytes = 0, .file_offset = 0};
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const std::uint64_t dim_at = pos_;
      HR_ASSIGN_OR_RETURN(tensor.dims[d], read<std::uint64_t>(fmt::format("dimension {} of {}", d, what)));
      if (tensor.dims[d] == 0 || tensor.dims[d] > limits::kGgufDimMax) {
        return fail(dim_at, fmt::format("{} has dimension {} of {}, not 1 to {}", what, d, tensor.dims[d],
                                        limits::kGgufDimMax));
      }
    }

    const std::uint64_t type_at = pos_;
    HR_ASSIGN_OR_RETURN(std::uint32_t type_id, read<std::uint32_t>(fmt::format("the type of {}", what)));
    const std::optional<TensorType> type = tensor_type_of(type_id);
    if (!type) {
      return fail(type_at, fmt::format("{} has unsupported tensor type {}: the engine reads f32, f16, bf16, q8_0 "
                                       "and q4_0",
                                       what, ggml_type_label(type_id)));
    }
    tensor.type = *type;
    if (tensor.dims[0] % block_values(tensor.type) != 0) {
      return fail(dims_at, fmt::format("{} is {} with {} values per row, not a multiple of its {}-value blocks",
                                       what, tensor_type_name(tensor.type), tensor.dims[0],
                                       block_values(tensor.type)));
    }
    std::uint64_t elements = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      if (__builtin_mul_overflow(elements, tensor.dims[d], &elements) || elements > limits::kGgufDimMax) {
        return fail(dims_at, fmt::format("{} has shape {}: its element count overflows", what,
                                         format_shape(tensor.shape())));
      }
    }
    if (__builtin_mul_overflow(elements / block_values(tensor.type), block_bytes(tensor.type), &tensor.bytes)) {
      return fail(dims_at, fmt::format("{} has shape {}: its byte size overflows", what, format_shape(tensor.shape())));
    }

    const std::uint64_t offset_at = pos_;
    HR_ASSIGN_OR_RETURN(std::uint64_t offset, read<std::uint64_t>(fmt::format("the data offset of {}", what)));
    if (offset % file_.alignment_ != 0) {
      return fail(offset_at, fmt::format("{} has data offset {}, not a multiple of the alignment {}", what, offset,
                                         file_.alignment_));
    }
    tensor.file_offset = offset;  // relative to the data section until check_tensor_data()

    if (!file_.tensor_index_.emplace(name, file_.tensors_.size()).second) {
      return fail(at, fmt::format("tensor name {} appears twice", quoted(name)));
    }
    file_.tensors_.push_back(tensor);
    return Status::ok();
  }

  Status check_tensor_data() {
    // The data section starts at the next multiple of the alignment; a file without tensors may end before it.
    const std::uint64_t alignment = file_.alignment_;
    file_.data_offset_ = (pos_ + alignment - 1) / alignment * alignment;  // pos_ <= size_ < 2^63: no overflow
    if (file_.tensors_.empty()) return Status::ok();
    if (file_.data_offset_ > size_) {
      return fail(pos_, fmt::format("truncated: the data section starts at byte {}, past the end of the file ({} bytes)",
                                    file_.data_offset_, size_));
    }
    const std::uint64_t data_bytes = size_ - file_.data_offset_;
    for (TensorView& tensor : file_.tensors_) {
      const std::uint64_t offset = tensor.file_offset;
      if (offset > data_bytes || tensor.bytes > data_bytes - offset) {
        return Status::invalid_argument(fmt::format(
            "{}: tensor {} needs {} bytes at data offset {} (byte {}), past the end of the file ({} bytes)",
            file_.name_, quoted(tensor.name), tensor.bytes, offset, file_.data_offset_ + std::min(offset, data_bytes),
            size_));
      }
      tensor.file_offset = file_.data_offset_ + offset;
      tensor.data = file_.base_ + tensor.file_offset;
    }
    std::vector<const TensorView*> by_offset(file_.tensors_.size());
    std::transform(file_.tensors_.begin(), file_.tensors_.end(), by_offset.begin(), [](const TensorView& t) {
      return &t;
    });
    std::sort(by_offset.begin(), by_offset.end(), [](const TensorView* a, const TensorView* b) {
      return a->file_offset < b->file_offset;
    });
    for (std::size_t i = 1; i < by_offset.size(); ++i) {
      const TensorView& a = *by_offset[i - 1];
      const TensorView& b = *by_offset[i];
      if (a.file_offset + a.bytes > b.file_offset) {  // both end inside the file: no overflow
        return Status::invalid_argument(fmt::format("{}: tensors {} (bytes {} to {}) and {} (from byte {}) overlap",
                                                    file_.name_, quoted(a.name), a.file_offset,
                                                    a.file_offset + a.bytes, quoted(b.name), b.file_offset));
      }
    }
    return Status::ok();
  }

  GgufFile& file_;
  const std::uint64_t size_;
  std::uint64_t pos_ = 0;
  std::uint64_t tensor_count_ = 0;
  std::uint64_t metadata_count_ = 0;
};

GgufFile::GgufFile(std::string name, const std::uint8_t* base, std::uint64_t size, bool mapped)
    : name_(std::move(name)), base_(base), size_(size), mapped_(mapped) {}

GgufFile::~GgufFile() {
  if (mapped_) ::munmap(const_cast<std::uint8_t*>(base_), size_);
}

Result<std::unique_ptr<GgufFile>> GgufFile::parse(std::span<const std::uint8_t> bytes, std::string name) {
  std::unique_ptr<GgufFile> file(new GgufFile(std::move(name), bytes.data(), bytes.size(), false));
  HR_RETURN_IF_ERROR(Parser(*file).run());
  return file;
}

Result<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    const std::string message = fmt::format("{}: cannot open: {}", path, std::strerror(error));
    if (error == ENOENT || error == ENOTDIR) return Status::not_found(message);
    if (error == EACCES || error == EPERM) return Status::permission_denied(message);
    return Status::internal(message);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    return Status::internal(fmt::format("{}: cannot stat: {}", path, std::strerror(error)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::invalid_argument(fmt::format("{}: not a regular file", path));
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return parse({}, path);  // nothing to map; the parser says why an empty file is not GGUF
  }
  void* base = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int error = errno;
  ::close(fd);  // the mapping keeps the file
  if (base == MAP_FAILED) return Status::internal(fmt::format("{}: cannot map: {}", path, std::strerror(error)));
  std::unique_ptr<GgufFile> file(new GgufFile(path, static_cast<const std::uint8_t*>(base), size, true));
  HR_RETURN_IF_ERROR(Parser(*file).run());
  return file;
}

const GgufMetadataEntry* GgufFile::find_metadata(std::string_view key) const {
  auto it = entry_index_.find(key);
  return it == entry_index_.end() ? nullptr : &entries_[it->second];
}

Result<const GgufMetadataEntry*> GgufFile::lookup(std::string_view key, GgufValueType type,
                                                  GgufValueType array_type) const {
  const GgufMetadataEntry* entry = find_metadata(key);
  if (entry == nullptr) return Status::not_found(fmt::format("{}: no metadata key {}", name_, quoted(key)));
  auto describe = [](GgufValueType t, GgufValueType element) {
    return t == GgufValueType::kArray ? "an array of " + gguf_value_type_name(element) : gguf_value_type_name(t);
  };
  if (entry->type != type || (type == GgufValueType::kArray && entry->array_type != array_type)) {
    return Status::invalid_argument(fmt::format("{}: metadata key {} is {}, not {}", name_, quoted(key),
                                                describe(entry->type, entry->array_type), describe(type, array_type)));
  }
  return entry;
}

Result<std::string_view> GgufFile::get_string(std::string_view key) const {
  HR_ASSIGN_OR_RETURN(const GgufMetadataEntry* entry, lookup(key, GgufValueType::kString, GgufValueType::kString));
  const std::uint8_t* at = base_ + entry->value_offset;
  return std::string_view(reinterpret_cast<const char*>(at + 8), static_cast<std::size_t>(load_u64(at)));
}

Result<GgufStringArray> GgufFile::get_string_array(std::string_view key) const {
  HR_ASSIGN_OR_RETURN(const GgufMetadataEntry* entry, lookup(key, GgufValueType::kArray, GgufValueType::kString));
  return GgufStringArray(base_, std::span<const std::uint64_t>(string_starts_).subspan(
                                    entry->first_string, static_cast<std::size_t>(entry->array_size)));
}

Result<std::uint64_t> GgufFile::get_unsigned(std::string_view key) const {
  const GgufMetadataEntry* entry = find_metadata(key);
  if (entry == nullptr) return Status::not_found(fmt::format("{}: no metadata key {}", name_, quoted(key)));
  const std::uint8_t* at = base_ + entry->value_offset;
  std::int64_t signed_value = 0;
  switch (entry->type) {
    case GgufValueType::kUint8: return GgufArray<std::uint8_t>(at, 1)[0];
    case GgufValueType::kUint16: return GgufArray<std::uint16_t>(at, 1)[0];
    case GgufValueType::kUint32: return GgufArray<std::uint32_t>(at, 1)[0];
    case GgufValueType::kUint64: return GgufArray<std::uint64_t>(at, 1)[0];
    case GgufValueType::kInt8: signed_value = GgufArray<std::int8_t>(at, 1)[0]; break;
    case GgufValueType::kInt16: signed_value = GgufArray<std::int16_t>(at, 1)[0]; break;
    case GgufValueType::kInt32: signed_value = GgufArray<std::int32_t>(at, 1)[0]; break;
    case GgufValueType::kInt64: signed_value = GgufArray<std::int64_t>(at, 1)[0]; break;
    default:
      return Status::invalid_argument(fmt::format("{}: metadata key {} is {}, not an integer", name_, quoted(key),
                                                  gguf_value_type_name(entry->type)));
  }
  if (signed_value < 0) {
    return Status::invalid_argument(
        fmt::format("{}: metadata key {} is {}, not a count or an id", name_, quoted(key), signed_value));
  }
  return static_cast<std::uint64_t>(signed_value);
}

Result<double> GgufFile::get_real(std::string_view key) const {
  const GgufMetadataEntry* entry = find_metadata(key);
  if (entry == nullptr) return Status::not_found(fmt::format("{}: no metadata key {}", name_, quoted(key)));
  const std::uint8_t* at = base_ + entry->value_offset;
  if (entry->type == GgufValueType::kFloat32) return static_cast<double>(GgufArray<float>(at, 1)[0]);
  if (entry->type == GgufValueType::kFloat64) return GgufArray<double>(at, 1)[0];
  return Status::invalid_argument(fmt::format("{}: metadata key {} is {}, not float32 or float64", name_, quoted(key),
                                              gguf_value_type_name(entry->type)));
}

namespace {

std::string format_scalar(GgufValueType type, const std::uint8_t* at) {
  switch (type) {
    case GgufValueType::kUint8: return fmt::format("{}", GgufArray<std::uint8_t>(at, 1)[0]);
    case GgufValueType::kInt8: return fmt::format("{}", GgufArray<std::int8_t>(at, 1)[0]);
    case GgufValueType::kUint16: return fmt::format("{}", GgufArray<std::uint16_t>(at, 1)[0]);
    case GgufValueType::kInt16: return fmt::format("{}", GgufArray<std::int16_t>(at, 1)[0]);
    case GgufValueType::kUint32: return fmt::format("{}", GgufArray<std::uint32_t>(at, 1)[0]);
    case GgufValueType::kInt32: return fmt::format("{}", GgufArray<std::int32_t>(at, 1)[0]);
    case GgufValueType::kUint64: return fmt::format("{}", GgufArray<std::uint64_t>(at, 1)[0]);
    case GgufValueType::kInt64: return fmt::format("{}", GgufArray<std::int64_t>(at, 1)[0]);
    case GgufValueType::kFloat32: return fmt::format("{}", GgufArray<float>(at, 1)[0]);
    case GgufValueType::kFloat64: return fmt::format("{}", GgufArray<double>(at, 1)[0]);
    case GgufValueType::kBool: return GgufArray<bool>(at, 1)[0] ? "true" : "false";
    case GgufValueType::kString: {
      std::string_view text(reinterpret_cast<const char*>(at + 8), static_cast<std::size_t>(load_u64(at)));
      constexpr std::size_t kShown = 200;
      return text.size() <= kShown ? to_valid_utf8(text) : to_valid_utf8(text.substr(0, kShown)) + "...";
    }
    case GgufValueType::kArray: break;
  }
  return "?";
}

}  // namespace

std::string GgufFile::format_value(const GgufMetadataEntry& entry, std::size_t max_elements) const {
  const std::uint8_t* at = base_ + entry.value_offset;
  if (entry.type != GgufValueType::kArray) return format_scalar(entry.type, at);
  std::string out = "[";
  const std::size_t shown = static_cast<std::size_t>(std::min<std::uint64_t>(entry.array_size, max_elements));
  for (std::size_t i = 0; i < shown; ++i) {
    if (i > 0) out += ", ";
    if (entry.array_type == GgufValueType::kString) {
      out += format_scalar(GgufValueType::kString, base_ + string_starts_[entry.first_string + i]);
    } else {
      out += format_scalar(entry.array_type, at + i * gguf_value_bytes(entry.array_type));
    }
  }
  if (shown < entry.array_size) {
    out += fmt::format("{}... {} {}s", shown > 0 ? ", " : "", entry.array_size, gguf_value_type_name(entry.array_type));
  }
  return out + "]";
}

const TensorView* GgufFile::find(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Result<TensorView> GgufFile::tensor(std::string_view name) const {
  const TensorView* tensor = find(name);
  if (tensor == nullptr) return Status::not_found(fmt::format("{}: no tensor {}", name_, quoted(name)));
  return *tensor;
}

Result<TensorView> GgufFile::tensor(std::string_view name, std::span<const std::uint64_t> dims) const {
  HR_ASSIGN_OR_RETURN(TensorView found, tensor(name));
  if (!std::equal(dims.begin(), dims.end(), found.shape().begin(), found.shape().end())) {
    return Status::invalid_argument(fmt::format("{}: tensor {} has shape {}, expected {}", name_, quoted(name),
                                                format_shape(found.shape()), format_shape(dims)));
  }
  return found;
}

}  // namespace headroom::infer
