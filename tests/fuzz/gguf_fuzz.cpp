// Fuzz target for the GGUF loader (src/infer/gguf/gguf_file.h). Whatever
// the bytes:
//   - parsing never crashes and never reads past the input: a refused file
//     has a message; an accepted one's every view (metadata values, strings,
//     tensor data) lies inside the input, and all of it is read here so that
//     AddressSanitizer sees a view that does not;
//   - an accepted file re-encodes: GgufWriter writes its metadata and
//     tensors again, and the loader reads back the same values and bytes.
//
// Corpus (tests/fuzz/corpus/gguf), made with tests/tools/gguf_generate:
//   tiny-q4_0.gguf        --type q4_0 --vocab 259 --dim 32 --hidden 32 --layers 1 --heads 2 --kv-heads 1
//   tiny-f16-tied-v2.gguf --type f16 --vocab 260 --dim 16 --hidden 32 --layers 1 --heads 2 --kv-heads 2 --tied
//                         --gguf-version 2 --alignment 64 --every-value-type --seed 2
//   tiny-q8_0-cut.gguf    the first 5000 bytes of
//                         --type q8_0 --vocab 300 --dim 32 --hidden 64 --layers 1 --heads 4 --kv-heads 1 --seed 3
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/check.h"
#include "infer/gguf/gguf_file.h"
#include "infer/gguf/gguf_writer.h"

using namespace headroom;
using namespace headroom::infer;

namespace {

// Every metadata value of `file`, added to `writer` as it is.
template <typename T>
Status copy_array(const GgufFile& file, std::string_view key, GgufWriter& writer) {
  auto array = file.get_array<T>(key);
  CHECK(array.is_ok()) << array.status().to_string();
  std::vector<T> values(array->begin(), array->end());
  if constexpr (std::is_same_v<T, bool>) {
    std::unique_ptr<bool[]> copy(new bool[values.size() + 1]);
    for (std::size_t i = 0; i < values.size(); ++i) copy[i] = values[i];
    return writer.add_array<bool>(key, std::span<const bool>(copy.get(), values.size()));
  } else {
    return writer.add_array<T>(key, values);
  }
}

template <typename T>
Status copy_scalar(const GgufFile& file, std::string_view key, GgufWriter& writer) {
  auto value = file.get<T>(key);
  CHECK(value.is_ok()) << value.status().to_string();
  return writer.add<T>(key, *value);
}

Status copy_entry(const GgufFile& file, const GgufMetadataEntry& entry, GgufWriter& writer) {
  const std::string_view key = entry.key;
  switch (entry.type == GgufValueType::kArray ? entry.array_type : entry.type) {
#define HR_COPY(kind, T)                                                                     \
  case GgufValueType::kind:                                                                  \
    return entry.type == GgufValueType::kArray ? copy_array<T>(file, key, writer)            \
                                               : copy_scalar<T>(file, key, writer);
    HR_COPY(kUint8, std::uint8_t)
    HR_COPY(kInt8, std::int8_t)
    HR_COPY(kUint16, std::uint16_t)
    HR_COPY(kInt16, std::int16_t)
    HR_COPY(kUint32, std::uint32_t)
    HR_COPY(kInt32, std::int32_t)
    HR_COPY(kUint64, std::uint64_t)
    HR_COPY(kInt64, std::int64_t)
    HR_COPY(kFloat32, float)
    HR_COPY(kFloat64, double)
    HR_COPY(kBool, bool)
#undef HR_COPY
    case GgufValueType::kString:
      if (entry.type == GgufValueType::kString) return writer.add_string(key, *file.get_string(key));
      {
        auto strings = file.get_string_array(key);
        std::vector<std::string> copy;
        for (std::size_t i = 0; i < strings->size(); ++i) copy.emplace_back((*strings)[i]);
        return writer.add_string_array(key, copy);
      }
    case GgufValueType::kArray: break;
  }
  CHECK(false) << "the loader accepted an array of arrays";
  return Status::internal("unreachable");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto parsed = GgufFile::parse({data, size}, "fuzz.gguf");
  if (!parsed) {
    CHECK(!parsed.status().message().empty());
    return 0;
  }
  const GgufFile& file = **parsed;

  // Read every view the file hands out.
  std::uint64_t checksum = 0;
  for (const GgufMetadataEntry& entry : file.metadata()) {
    CHECK(file.find_metadata(entry.key) == &entry);
    CHECK(entry.value_offset <= size);
    checksum += file.format_value(entry, ~std::size_t{0}).size();
  }
  for (const TensorView& tensor : file.tensors()) {
    CHECK(file.find(tensor.name) == &tensor);
    CHECK(tensor.data >= data && tensor.bytes > 0 && tensor.bytes <= size &&
          tensor.data - data <= static_cast<std::ptrdiff_t>(size - tensor.bytes))
        << tensor.name;
    CHECK(tensor.file_offset % file.alignment() == 0);
    CHECK(tensor.bytes == tensor.rows() * tensor.row_bytes());
    for (std::uint64_t i = 0; i < tensor.bytes; ++i) checksum += tensor.data[i];
  }

  // Write it again and read it back.
  GgufWriter writer(GgufWriterOptions{.version = file.version(), .alignment = file.alignment()});
  for (const GgufMetadataEntry& entry : file.metadata()) {
    if (entry.key == "general.alignment") continue;  // the writer writes it from its options
    const Status status = copy_entry(file, entry, writer);
    CHECK(status.is_ok()) << "an accepted entry is refused by the writer: " << status.to_string();
  }
  for (const TensorView& tensor : file.tensors()) {
    const Status status = writer.add_tensor(tensor.name, tensor.type, tensor.shape(), {tensor.data, tensor.bytes});
    CHECK(status.is_ok()) << "an accepted tensor is refused by the writer: " << status.to_string();
  }
  const std::string bytes = writer.to_bytes();
  auto again = GgufFile::parse({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()}, "again.gguf");
  CHECK(again.is_ok()) << again.status().to_string();
  for (const GgufMetadataEntry& entry : file.metadata()) {
    if (entry.key == "general.alignment") continue;
    const GgufMetadataEntry* copy = (*again)->find_metadata(entry.key);
    CHECK(copy != nullptr && copy->type == entry.type && copy->array_type == entry.array_type &&
          copy->array_size == entry.array_size)
        << entry.key;
    CHECK((*again)->format_value(*copy, ~std::size_t{0}) == file.format_value(entry, ~std::size_t{0})) << entry.key;
  }
  CHECK((*again)->tensors().size() == file.tensors().size());
  for (const TensorView& tensor : file.tensors()) {
    const TensorView* copy = (*again)->find(tensor.name);
    CHECK(copy != nullptr && copy->type == tensor.type && copy->bytes == tensor.bytes &&
          std::equal(copy->shape().begin(), copy->shape().end(), tensor.shape().begin(), tensor.shape().end()) &&
          std::equal(copy->data, copy->data + copy->bytes, tensor.data))
        << tensor.name;
  }
  if (checksum == 1) std::fputc('\0', stderr);  // keeps the reads above from being optimized away
  return 0;
}
