#include "infer/tokenizer/gguf_vocabulary.h"

#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace headroom::infer {

namespace {

constexpr std::string_view kTokenizerPrefix = "tokenizer.ggml.";

bool is_integer(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
      return true;
    default:
      return false;
  }
}

template <typename T>
Result<std::int64_t> widened(const GgufFile& file, std::string_view key) {
  HR_ASSIGN_OR_RETURN(T value, file.get<T>(key));
  if constexpr (std::is_same_v<T, std::uint64_t>) {
    // Past INT64_MAX saturates: no token id is that large, so it reads as "none" all the same.
    if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::numeric_limits<std::int64_t>::max();
    }
  }
  return static_cast<std::int64_t>(value);
}

Result<std::int64_t> integer_value(const GgufFile& file, const GgufMetadataEntry& entry) {
  switch (entry.type) {
    case GgufValueType::kUint8:
      return widened<std::uint8_t>(file, entry.key);
    case GgufValueType::kInt8:
      return widened<std::int8_t>(file, entry.key);
    case GgufValueType::kUint16:
      return widened<std::uint16_t>(file, entry.key);
    case GgufValueType::kInt16:
      return widened<std::int16_t>(file, entry.key);
    case GgufValueType::kUint32:
      return widened<std::uint32_t>(file, entry.key);
    case GgufValueType::kInt32:
      return widened<std::int32_t>(file, entry.key);
    case GgufValueType::kUint64:
      return widened<std::uint64_t>(file, entry.key);
    case GgufValueType::kInt64:
      return widened<std::int64_t>(file, entry.key);
    default:
      return Status::internal("gguf key '" + std::string(entry.key) + "' is not an integer");
  }
}

Result<MetadataValue> scalar_value(const GgufFile& file, const GgufMetadataEntry& entry) {
  if (entry.type == GgufValueType::kString) {
    HR_ASSIGN_OR_RETURN(std::string_view text, file.get_string(entry.key));
    return MetadataValue(std::string(text));
  }
  if (entry.type == GgufValueType::kBool) {
    HR_ASSIGN_OR_RETURN(bool value, file.get<bool>(entry.key));
    return MetadataValue(value);
  }
  if (entry.type == GgufValueType::kFloat32 || entry.type == GgufValueType::kFloat64) {
    HR_ASSIGN_OR_RETURN(double value, file.get_real(entry.key));
    return MetadataValue(value);
  }
  if (is_integer(entry.type)) {
    HR_ASSIGN_OR_RETURN(std::int64_t value, integer_value(file, entry));
    return MetadataValue(value);
  }
  return Status::invalid_argument("gguf key '" + std::string(entry.key) + "' has unsupported type " +
                                  gguf_value_type_name(entry.type));
}

template <typename T>
Result<std::vector<std::int32_t>> int32_array(const GgufFile& file, std::string_view key) {
  HR_ASSIGN_OR_RETURN(GgufArray<T> array, file.get_array<T>(key));
  std::vector<std::int32_t> out;
  out.reserve(array.size());
  for (const T value : array) {
    const bool fits = std::is_signed_v<T> ? (static_cast<std::int64_t>(value) >= INT32_MIN &&
                                             static_cast<std::int64_t>(value) <= INT32_MAX)
                                          : static_cast<std::uint64_t>(value) <= INT32_MAX;
    if (!fits) {
      return Status::invalid_argument("gguf key '" + std::string(key) + "' holds " + std::to_string(value) +
                                      ", past int32");
    }
    out.push_back(static_cast<std::int32_t>(value));
  }
  return out;
}

Result<MetadataValue> array_value(const GgufFile& file, const GgufMetadataEntry& entry) {
  const std::string_view key = entry.key;
  switch (entry.array_type) {
    case GgufValueType::kString: {
      HR_ASSIGN_OR_RETURN(GgufStringArray array, file.get_string_array(key));
      std::vector<std::string> out;
      out.reserve(array.size());
      for (std::size_t i = 0; i < array.size(); ++i) out.emplace_back(array[i]);
      return MetadataValue(std::move(out));
    }
    case GgufValueType::kFloat32: {
      HR_ASSIGN_OR_RETURN(GgufArray<float> array, file.get_array<float>(key));
      return MetadataValue(std::vector<float>(array.begin(), array.end()));
    }
    case GgufValueType::kFloat64: {
      HR_ASSIGN_OR_RETURN(GgufArray<double> array, file.get_array<double>(key));
      std::vector<float> out;
      out.reserve(array.size());
      for (const double value : array) out.push_back(static_cast<float>(value));
      return MetadataValue(std::move(out));
    }
    case GgufValueType::kInt32: {
      HR_ASSIGN_OR_RETURN(GgufArray<std::int32_t> array, file.get_array<std::int32_t>(key));
      return MetadataValue(std::vector<std::int32_t>(array.begin(), array.end()));
    }
    case GgufValueType::kUint8: {
      HR_ASSIGN_OR_RETURN(auto v, int32_array<std::uint8_t>(file, key));
      return MetadataValue(std::move(v));
    }
    case GgufValueType::kInt8: {
      HR_ASSIGN_OR_RETURN(auto v, int32_array<std::int8_t>(file, key));
      return MetadataValue(std::move(v));
    }
    case GgufValueType::kUint16: {
      HR_ASSIGN_OR_RETURN(auto v, int32_array<std::uint16_t>(file, key));
      return MetadataValue(std::move(v));
    }
    case GgufValueType::kInt16: {
      HR_ASSIGN_OR_RETURN(auto v, int32_array<std::int16_t>(file, key));
      return MetadataValue(std::move(v));
    }
    case GgufValueType::kUint32: {
      HR_ASSIGN_OR_RETURN(auto v, int32_array<std::uint32_t>(file, key));
      return MetadataValue(std::move(v));
    }
    case GgufValueType::kUint64: {
      HR_ASSIGN_OR_RETURN(auto v, int32_array<std::uint64_t>(file, key));
      return MetadataValue(std::move(v));
    }
    case GgufValueType::kInt64: {
      HR_ASSIGN_OR_RETURN(auto v, int32_array<std::int64_t>(file, key));
      return MetadataValue(std::move(v));
    }
    default:
      return Status::invalid_argument("gguf key '" + std::string(key) + "' is an array of unsupported type " +
                                      gguf_value_type_name(entry.array_type));
  }
}

}  // namespace

Result<TokenizerMetadata> tokenizer_metadata_from_gguf(const GgufFile& file) {
  TokenizerMetadata metadata;
  for (const GgufMetadataEntry& entry : file.metadata()) {
    if (!entry.key.starts_with(kTokenizerPrefix)) continue;
    if (entry.type == GgufValueType::kArray) {
      HR_ASSIGN_OR_RETURN(MetadataValue value, array_value(file, entry));
      metadata.set(entry.key, std::move(value));
    } else {
      HR_ASSIGN_OR_RETURN(MetadataValue value, scalar_value(file, entry));
      metadata.set(entry.key, std::move(value));
    }
  }
  return metadata;
}

Result<Vocabulary> vocabulary_from_gguf(const GgufFile& file) {
  HR_ASSIGN_OR_RETURN(TokenizerMetadata metadata, tokenizer_metadata_from_gguf(file));
  return vocabulary_from_metadata(metadata);
}

}  // namespace headroom::infer
