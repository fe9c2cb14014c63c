// Memory for the large arrays inference streams through (packed weights,
// the KV cache): mapped anonymously, 2 MiB aligned and advised to be backed
// by transparent huge pages. With 4 KiB pages, a step that walks a hundred
// MB of them misses the TLB every 4 KiB, and each miss is a page walk the
// prefetchers cannot hide (the attention of a batch of sequences, which
// jumps from page to page of the cache, ran at a fraction of the memory's
// bandwidth for it). Where the kernel has huge pages off, the advice is
// ignored and the buffer works as any other.
//
// The memory reads as zeros and is committed as it is first written.
// Move-only; a default-constructed buffer is empty.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"

namespace headroom::infer {

class LargeBuffer {
 public:
  LargeBuffer() = default;
  // `bytes` of memory (0: an empty buffer), or unavailable naming the size
  // and the system's reason when it cannot be mapped.
  static Result<LargeBuffer> map(std::size_t bytes);
  ~LargeBuffer();
  LargeBuffer(LargeBuffer&& other) noexcept;
  LargeBuffer& operator=(LargeBuffer&& other) noexcept;
  LargeBuffer(const LargeBuffer&) = delete;
  LargeBuffer& operator=(const LargeBuffer&) = delete;

  std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;    // as asked
  std::size_t mapped_ = 0;  // size_ rounded up to whole huge pages
};

}  // namespace headroom::infer
