// Test helpers of the ledger's logs: a fresh directory per test, and raw
// access to a log file's bytes to tear and corrupt it.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

namespace headroom::ledger::testing {

// A fresh directory, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::path(::testing::TempDir()) / "headroom_ledger_test_XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

// prefix + n, built without the temporaries that trip GCC 12's -Wrestrict.
inline std::string named(std::string_view prefix, long long n) {
  std::string out(prefix);
  out += std::to_string(n);
  return out;
}

inline std::uint64_t file_size(const std::string& path) { return std::filesystem::file_size(path); }

inline void truncate_file(const std::string& path, std::uint64_t size) { std::filesystem::resize_file(path, size); }

// Overwrites bytes at `offset`.
inline void write_bytes(const std::string& path, std::uint64_t offset, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

inline char read_byte(const std::string& path, std::uint64_t offset) {
  int fd = ::open(path.c_str(), O_RDONLY);
  char c = 0;
  EXPECT_EQ(::pread(fd, &c, 1, static_cast<off_t>(offset)), 1);
  ::close(fd);
  return c;
}

// Flips the bits of the byte at `offset`.
inline void flip_byte(const std::string& path, std::uint64_t offset) {
  char c = static_cast<char>(~read_byte(path, offset));
  write_bytes(path, offset, std::string_view(&c, 1));
}

}  // namespace headroom::ledger::testing
