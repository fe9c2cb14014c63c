#include "infer/kernels/large_buffer.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

namespace headroom::infer {
namespace {

constexpr std::size_t kHugePage = std::size_t{2} << 20;

}  // namespace

Result<LargeBuffer> LargeBuffer::map(std::size_t bytes) {
  LargeBuffer buffer;
  if (bytes == 0) return buffer;
  if (bytes > SIZE_MAX - 2 * kHugePage) return Status::unavailable("cannot map " + std::to_string(bytes) + " bytes");
  const std::size_t mapped = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  // Map a huge page more than needed, then unmap the ends so that what is
  // left starts on a huge-page boundary.
  const std::size_t reserved = mapped + kHugePage;
  void* at = ::mmap(nullptr, reserved, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (at == MAP_FAILED) {
    return Status::unavailable("cannot map " + std::to_string(bytes) + " bytes: " + std::strerror(errno));
  }
  const auto start = reinterpret_cast<std::uintptr_t>(at);
  const std::uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) ::munmap(at, aligned - start);
  if (const std::size_t tail = start + reserved - (aligned + mapped); tail > 0) {
    ::munmap(reinterpret_cast<void*>(aligned + mapped), tail);
  }
  buffer.data_ = reinterpret_cast<std::uint8_t*>(aligned);
  buffer.size_ = bytes;
  buffer.mapped_ = mapped;
  // Advice only: without transparent huge pages this fails, and 4 KiB pages serve.
  ::madvise(buffer.data_, mapped, MADV_HUGEPAGE);
  return buffer;
}

LargeBuffer::~LargeBuffer() {
  if (data_ != nullptr) ::munmap(data_, mapped_);
}

LargeBuffer::LargeBuffer(LargeBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, 0)) {}

LargeBuffer& LargeBuffer::operator=(LargeBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) ::munmap(data_, mapped_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, 0);
  }
  return *this;
}

}  // namespace headroom::infer
