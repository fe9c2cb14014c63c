// Helpers for the GGUF tests: a byte builder for files the writer would
// refuse to write (hostile ones), exact-size copies so AddressSanitizer sees
// any read past a file, and the path of the shared real model.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "infer/gguf/gguf_file.h"

namespace headroom::infer::testing {

// Appends GGUF fields as they are encoded, with no checks at all.
class RawGguf {
 public:
  RawGguf& u8(std::uint8_t v) { return raw(&v, 1); }
  RawGguf& u32(std::uint32_t v) { return raw(&v, 4); }
  RawGguf& u64(std::uint64_t v) { return raw(&v, 8); }
  RawGguf& f32(float v) { return raw(&v, 4); }
  RawGguf& str(std::string_view s) {
    u64(s.size());
    bytes_.append(s);
    return *this;
  }
  RawGguf& header(std::uint64_t tensors, std::uint64_t entries, std::uint32_t version = 3) {
    return u32(kGgufMagic).u32(version).u64(tensors).u64(entries);
  }
  RawGguf& key(std::string_view k, GgufValueType type) { return str(k).u32(static_cast<std::uint32_t>(type)); }
  // A tensor info: name, dims, type id, offset.
  RawGguf& tensor(std::string_view name, std::vector<std::uint64_t> dims, std::uint32_t type, std::uint64_t offset) {
    str(name).u32(static_cast<std::uint32_t>(dims.size()));
    for (std::uint64_t d : dims) u64(d);
    return u32(type).u64(offset);
  }
  RawGguf& pad(std::size_t alignment = 32) {
    bytes_.resize((bytes_.size() + alignment - 1) / alignment * alignment, '\0');
    return *this;
  }
  RawGguf& zeros(std::size_t n) {
    bytes_.append(n, '\0');
    return *this;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  RawGguf& raw(const void* v, std::size_t n) {
    bytes_.append(static_cast<const char*>(v), n);
    return *this;
  }
  std::string bytes_;
};

// A heap copy of exactly `bytes.size()` bytes: a read one past it is a
// heap-buffer-overflow under AddressSanitizer.
class ExactBuffer {
 public:
  explicit ExactBuffer(std::string_view bytes)
      : size_(bytes.size()), data_(new std::uint8_t[bytes.size() == 0 ? 1 : bytes.size()]) {
    if (!bytes.empty()) std::memcpy(data_.get(), bytes.data(), bytes.size());
  }
  std::span<const std::uint8_t> span() const { return {data_.get(), size_}; }

 private:
  std::size_t size_;
  std::unique_ptr<std::uint8_t[]> data_;
};

// Whether an error's message holds `fragment`: EXPECT_TRUE(MessageHas(result.status(), "..."))
inline ::testing::AssertionResult MessageHas(const Status& status, std::string_view fragment) {
  if (!status.is_ok() && status.message().find(fragment) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << status.to_string() << "\" does not hold \"" << fragment << "\"";
}

// The repository's root: $HEADROOM_SOURCE_DIR (ctest sets it), else the
// working directory's ancestors holding src/infer/gguf.
inline std::filesystem::path source_dir() {
  if (const char* dir = std::getenv("HEADROOM_SOURCE_DIR"); dir != nullptr && *dir != '\0') return dir;
  std::filesystem::path at = std::filesystem::current_path();
  for (int up = 0; up < 8; ++up, at = at.parent_path()) {
    if (std::filesystem::exists(at / "src/infer/gguf/gguf_file.h")) return at;
  }
  return std::filesystem::current_path();
}

// The real stories260K model: the repository's copy of
// ../shared/models/stories260K.gguf (models/README.md), so that its tests
// run wherever the source is, a fresh clone included.
inline std::filesystem::path stories_path() { return source_dir() / "models" / "stories260K.gguf"; }

// A fresh directory under the system's temporary directory, removed at destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "headroom-gguf-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace headroom::infer::testing
