// CRC-32C (Castagnoli), the checksum of the durable logs: the SSE4.2 crc32
// instruction where the CPU has it (about 8 bytes a cycle), a table
// otherwise. Thread-safe; no state beyond a one-time CPU check.
#pragma once

#include <cstdint>
#include <string_view>

namespace headroom::ledger {

// The CRC-32C of `data` continued from `crc` (the CRC of what came before;
// 0 to start), so crc32c(a + b) == crc32c(b, crc32c(a)).
std::uint32_t crc32c(std::string_view data, std::uint32_t crc = 0);

// The same by table, byte at a time: the reference the fast one is tested against.
std::uint32_t crc32c_portable(std::string_view data, std::uint32_t crc = 0);

}  // namespace headroom::ledger
