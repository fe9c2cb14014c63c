// Damaged and hostile GGUF files: each gives an error that says what is
// wrong and where, never a crash or a read past the file (the buffers are
// exact-size heap copies, so AddressSanitizer sees any such read: run these
// under `make test-asan` too).
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>

#include "infer/gguf/gguf_file.h"
#include "infer/gguf/gguf_test_util.h"
#include "infer/gguf/gguf_writer.h"
#include "infer/gguf/random_llama.h"

namespace headroom::infer {
namespace {

using testing::ExactBuffer;
using testing::MessageHas;
using testing::RawGguf;

constexpr std::uint64_t kMax64 = ~0ULL;
constexpr std::uint32_t kF32 = 0, kQ8_0 = 8;

Status parse(std::string_view bytes) {
  ExactBuffer buffer(bytes);
  return GgufFile::parse(buffer.span(), "hostile.gguf").status();
}

// A tiny q4_0 llama (12 KiB) and a file of every value type and tensor
// type at alignment 64: valid files to cut and damage.
std::vector<std::string> valid_files() {
  RandomLlamaOptions tiny{.vocab_size = 259, .dim = 32, .hidden_dim = 32, .n_layers = 1, .n_heads = 2,
                          .n_kv_heads = 1, .weight_type = TensorType::kQ4_0};
  GgufWriter values(GgufWriterOptions{.version = 2, .alignment = 64});
  EXPECT_TRUE(values.add<std::uint8_t>("u8", 1).is_ok());
  EXPECT_TRUE(values.add<std::int16_t>("i16", -2).is_ok());
  EXPECT_TRUE(values.add<double>("f64", 0.5).is_ok());
  EXPECT_TRUE(values.add<bool>("bool", true).is_ok());
  EXPECT_TRUE(values.add_string("string", "text").is_ok());
  const bool bools[] = {false, true};
  EXPECT_TRUE(values.add_array<bool>("bools", bools).is_ok());
  const std::uint64_t longs[] = {1, 2, 3};
  EXPECT_TRUE(values.add_array<std::uint64_t>("longs", longs).is_ok());
  const std::vector<std::string> strings = {"a", "", "ccc"};
  EXPECT_TRUE(values.add_string_array("strings", strings).is_ok());
  const std::uint64_t dims[] = {32, 2};
  for (TensorType type : {TensorType::kF32, TensorType::kF16, TensorType::kBF16, TensorType::kQ8_0,
                          TensorType::kQ4_0}) {
    EXPECT_TRUE(values.add_tensor(std::string(tensor_type_name(type)), type, dims,
                                  [](std::span<std::uint8_t> out) { std::memset(out.data(), 0x3c, out.size()); })
                    .is_ok());
  }
  return {random_llama(tiny)->to_bytes(), values.to_bytes()};
}

TEST(GgufHostile, EveryTruncationIsAnErrorOrLoads) {
  for (const std::string& file : valid_files()) {
    ExactBuffer whole(file);
    auto parsed = GgufFile::parse(whole.span(), "whole");
    ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
    const TensorView& last = (*parsed)->tensors().back();
    const std::uint64_t needed = last.file_offset + last.bytes;  // the padding after it may go
    for (std::size_t size = 0; size < file.size(); ++size) {
      const Status status = parse(std::string_view(file).substr(0, size));
      if (size >= needed) {
        EXPECT_TRUE(status.is_ok()) << size << ": " << status.to_string();
      } else {
        ASSERT_FALSE(status.is_ok()) << "cut at " << size << " of " << file.size();
        ASSERT_NE(status.message().find("hostile.gguf: "), std::string::npos) << status.to_string();
      }
    }
  }
}

// Every byte before the data section, replaced by values that make lengths,
// counts and types large or odd: an error or a file, never a crash.
TEST(GgufHostile, EveryDamagedHeaderByteIsAnErrorOrLoads) {
  for (const std::string& file : valid_files()) {
    ExactBuffer whole(file);
    const std::uint64_t data_offset = (*GgufFile::parse(whole.span(), "whole"))->data_offset();
    std::size_t errors = 0;
    for (std::size_t i = 0; i < data_offset; ++i) {
      for (std::uint8_t value : {std::uint8_t{0x00}, std::uint8_t{0xff}, std::uint8_t{0x80},
                                 static_cast<std::uint8_t>(file[i] ^ 0x01)}) {
        std::string damaged = file;
        damaged[i] = static_cast<char>(value);
        const Status status = parse(damaged);
        if (!status.is_ok()) {
          ++errors;
          ASSERT_FALSE(status.message().empty());
        }
      }
    }
    EXPECT_GT(errors, 0u);
  }
}

struct Case {
  std::string_view what;
  std::string bytes;
  std::string_view error;  // a fragment of the message
};

std::vector<Case> header_cases() {
  return {
      {"empty", "", "hostile.gguf: 0 bytes is too short for a GGUF file"},
      {"bad magic", "GGUX" + std::string(20, '\0'), "not a GGUF file (magic 0x58554747) (at byte 0)"},
      {"v1", RawGguf().header(0, 0, 1).bytes(), "GGUF version 1 is not supported"},
      {"big-endian", RawGguf().header(0, 0, 0x03000000).bytes(), "big-endian GGUF file is not supported"},
      {"v4", RawGguf().header(0, 0, 4).bytes(), "unknown GGUF version 4 (at byte 4)"},
      {"header cut", RawGguf().u32(kGgufMagic).u32(3).u32(0).bytes(),
       "truncated: the tensor count needs 8 bytes, 4 left in the file (at byte 8)"},
      {"huge tensor count", RawGguf().header(kMax64, 0).bytes(), "18446744073709551615 tensors, more than the limit"},
      {"huge metadata count", RawGguf().header(0, 1ULL << 63).bytes(), "metadata entries, more than the limit"},
      {"counts that cannot fit", RawGguf().header(65'536, 65'536).zeros(64).bytes(),
       "65536 metadata entries and 65536 tensors cannot fit in the 64 bytes left"},
  };
}

std::vector<Case> metadata_cases() {
  auto one = [] { return RawGguf().header(0, 1); };
  auto array_of = [&](std::uint32_t type, std::uint64_t count) {
    return one().key("k", GgufValueType::kArray).u32(type).u64(count);
  };
  return {
      {"huge key length", one().u64(kMax64).zeros(16).bytes(),
       "the key of metadata entry 0 is 18446744073709551615 bytes long, more than the limit of 1024 (at byte 24)"},
      {"key past the end", one().u64(100).zeros(16).bytes(), "truncated: the key of metadata entry 0 needs 100 bytes"},
      {"empty key", one().str("").u32(0).u8(0).zeros(16).bytes(), "metadata entry 0 has an empty key"},
      {"bad value type", one().key("k", static_cast<GgufValueType>(13)).zeros(16).bytes(),
       "metadata entry 0 ('k') has value type 13, not a GGUF type (at byte 33)"},
      {"value cut", one().key("k", GgufValueType::kUint64).u32(0).bytes(),
       "truncated: the value of metadata entry 0 ('k') needs 8 bytes, 4 left"},
      {"bool 2", one().key("k", GgufValueType::kBool).u8(2).zeros(16).bytes(), "holds the bool value 2, not 0 or 1"},
      {"huge string", one().key("k", GgufValueType::kString).u64(1ULL << 62).zeros(16).bytes(),
       "the value of metadata entry 0 ('k') is 4611686018427387904 bytes long, more than the limit"},
      {"string past the end", one().key("k", GgufValueType::kString).u64(1000).zeros(16).bytes(),
       "truncated: the value of metadata entry 0 ('k') needs 1000 bytes, 16 left"},
      {"huge array", array_of(4, 1ULL << 62).zeros(16).bytes(), "has 4611686018427387904 elements, more than the limit"},
      {"array past the end", array_of(10, 1 << 24).zeros(16).bytes(),
       "truncated: the 16777216 elements of metadata entry 0 ('k') needs 134217728 bytes, 16 left"},
      {"string array past the end", array_of(8, 1 << 20).zeros(64).bytes(),
       "has 1048576 strings, which cannot fit in the 64 bytes left"},
      {"a string of an array past the end", array_of(8, 2).str("ab").u64(kMax64).zeros(8).bytes(),
       "string 1 of metadata entry 0 ('k') is 18446744073709551615 bytes long"},
      {"array of arrays", array_of(9, 1).u32(4).u64(1).u32(7).bytes(), "is an array of arrays, which is not supported"},
      {"bad element type", array_of(99, 1).zeros(16).bytes(), "is an array of type 99, not a GGUF type"},
      {"bool array", array_of(7, 3).u8(0).u8(1).u8(7).zeros(16).bytes(), "holds the bool value 7, not 0 or 1"},
      {"duplicate key",
       RawGguf().header(0, 2).key("k", GgufValueType::kUint8).u8(1).key("k", GgufValueType::kUint8).u8(2).bytes(),
       "metadata key 'k' appears twice"},
      {"invalid UTF-8 key", one().key("k\xff\xfe", static_cast<GgufValueType>(77)).zeros(16).bytes(),
       "('k\xef\xbf\xbd\xef\xbf\xbd') has value type 77"},
  };
}

std::vector<Case> alignment_cases() {
  auto with = [](GgufValueType type, std::uint32_t value) {
    return RawGguf().header(0, 1).key("general.alignment", type).u32(value).bytes();
  };
  return {
      {"alignment int32", with(GgufValueType::kInt32, 32), "general.alignment is int32, not uint32"},
      {"alignment 0", with(GgufValueType::kUint32, 0), "general.alignment is 0, not a power of two from 8 to 65536"},
      {"alignment 24", with(GgufValueType::kUint32, 24), "general.alignment is 24"},
      {"alignment 4", with(GgufValueType::kUint32, 4), "general.alignment is 4"},
      {"alignment 2^20", with(GgufValueType::kUint32, 1 << 20), "general.alignment is 1048576"},
  };
}

// A file of tensor infos and `data_bytes` of data.
std::string tensors(std::vector<std::tuple<std::string, std::vector<std::uint64_t>, std::uint32_t, std::uint64_t>> infos,
                    std::size_t data_bytes = 4096) {
  RawGguf raw;
  raw.header(infos.size(), 0);
  for (const auto& [name, dims, type, offset] : infos) raw.tensor(name, dims, type, offset);
  return raw.pad().zeros(data_bytes).bytes();
}

std::vector<Case> tensor_cases() {
  return {
      {"no dims", tensors({{"w", {}, kF32, 0}}), "tensor 0 ('w') has 0 dimensions, not 1 to 4"},
      {"five dims", tensors({{"w", {1, 1, 1, 1, 1}, kF32, 0}}), "has 5 dimensions"},
      {"zero dim", tensors({{"w", {4, 0}, kF32, 0}}), "tensor 0 ('w') has dimension 1 of 0, not 1 to"},
      {"negative dim", tensors({{"w", {1ULL << 63}, kF32, 0}}), "has dimension 0 of 9223372036854775808"},
      {"elements overflow", tensors({{"w", {1ULL << 32, 1ULL << 32}, kF32, 0}}),
       "has shape [4294967296, 4294967296]: its element count overflows"},
      {"elements past int64", tensors({{"w", {1ULL << 32, 1ULL << 31}, kF32, 0}}), "its element count overflows"},
      {"bytes overflow", tensors({{"w", {1ULL << 31, 1ULL << 31}, kF32, 0}}),
       "has shape [2147483648, 2147483648]: its byte size overflows"},
      {"unsupported type", tensors({{"blk.0.ffn_down.weight", {256}, 14, 0}}),
       "tensor 0 ('blk.0.ffn_down.weight') has unsupported tensor type q6_k (14): the engine reads f32"},
      {"unknown type", tensors({{"w", {32}, 1000, 0}}), "has unsupported tensor type 1000 (not a ggml type)"},
      {"ragged blocks", tensors({{"w", {33, 2}, kQ8_0, 0}}),
       "tensor 0 ('w') is q8_0 with 33 values per row, not a multiple of its 32-value blocks"},
      {"misaligned", tensors({{"w", {4}, kF32, 4}}), "tensor 0 ('w') has data offset 4, not a multiple of the alignment 32"},
      {"past the end", tensors({{"w", {4}, kF32, 1ULL << 40}}),
       "tensor 'w' needs 16 bytes at data offset 1099511627776"},
      {"offset + size wraps", tensors({{"w", {64}, kF32, kMax64 - 31}}), "past the end of the file"},
      {"ends past the end", tensors({{"w", {1025}, kF32, 0}}), "tensor 'w' needs 4100 bytes at data offset 0"},
      {"overlap", tensors({{"a", {64}, kF32, 0}, {"b", {64}, kF32, 128}, {"c", {8}, kF32, 192}}),
       "tensors 'a' (bytes 128 to 384) and 'b' (from byte 256) overlap"},
      {"overlap out of order", tensors({{"b", {8}, kF32, 256}, {"a", {128}, kF32, 0}}),
       "tensors 'a' (bytes 96 to 608) and 'b' (from byte 352) overlap"},
      {"same offset", tensors({{"a", {8}, kF32, 0}, {"b", {8}, kF32, 0}}), "overlap"},
      {"duplicate name", tensors({{"w", {8}, kF32, 0}, {"w", {8}, kF32, 32}}), "tensor name 'w' appears twice"},
      {"empty name", tensors({{"", {8}, kF32, 0}}), "tensor 0 has an empty name"},
      {"huge name", RawGguf().header(1, 0).u64(kMax64).zeros(64).bytes(),
       "the name of tensor 0 is 18446744073709551615 bytes long, more than the limit of 256"},
      {"no data section", RawGguf().header(1, 0).tensor("w", {8}, kF32, 0).bytes(),
       "truncated: the data section starts at byte 64, past the end of the file (57 bytes) (at byte 57)"},
  };
}

void expect_errors(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    const Status status = parse(c.bytes);
    EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << c.what << ": " << status.to_string();
    EXPECT_TRUE(MessageHas(status, c.error)) << c.what;
  }
}

TEST(GgufHostile, BadHeaders) { expect_errors(header_cases()); }
TEST(GgufHostile, BadMetadata) { expect_errors(metadata_cases()); }
TEST(GgufHostile, BadAlignment) { expect_errors(alignment_cases()); }
TEST(GgufHostile, BadTensors) { expect_errors(tensor_cases()); }

// The most metadata entries a file may have, each an array of one string:
// the string index grows in amortized steps, not one copy per array.
TEST(GgufHostile, ManySmallStringArraysParseQuickly) {
  RawGguf raw;
  raw.header(0, limits::kGgufMetadataEntries);
  for (std::uint64_t i = 0; i < limits::kGgufMetadataEntries; ++i) {
    std::string key = "k";  // not "k" + to_string(): g++ 12 warns falsely (-Wrestrict) on that
    key += std::to_string(i);
    raw.key(key, GgufValueType::kArray).u32(static_cast<std::uint32_t>(GgufValueType::kString));
    raw.u64(1).str("s");
  }
  const auto start = std::chrono::steady_clock::now();
  ExactBuffer buffer(raw.bytes());
  auto parsed = GgufFile::parse(buffer.span(), "many.gguf");
  ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
  EXPECT_EQ((*(*parsed)->get_string_array("k65535"))[0], "s");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(GgufHostile, EdgesThatAreValid) {
  // No tensors, and no padding after the header: nothing to align.
  EXPECT_TRUE(parse(RawGguf().header(0, 0).bytes()).is_ok());
  // Tensors that touch, in any order, the last ending at the file's end.
  EXPECT_TRUE(parse(tensors({{"b", {8}, kF32, 32}, {"a", {8}, kF32, 0}}, 64)).is_ok());
  // Four dims, each 1.
  EXPECT_TRUE(parse(tensors({{"w", {1, 1, 1, 1}, kF32, 0}}, 4)).is_ok());
  // The largest alignment.
  RawGguf raw;
  raw.header(1, 1).key("general.alignment", GgufValueType::kUint32).u32(65536).tensor("w", {2}, kF32, 65536);
  EXPECT_TRUE(parse(raw.pad(65536).zeros(65536 + 8).bytes()).is_ok());
}

}  // namespace
}  // namespace headroom::infer
