// Fuzz target for the ledger's durable inputs: command batches as the
// journal holds them (ledger.h draws the encoding) and usage events as the
// usage log holds them (usage_log.h). Whatever the bytes:
//   - decoding never crashes and accepts only what encoding can write: a
//     decoded batch re-encodes to the same bytes;
//   - applying a decoded batch to a ledger keeps its invariants (debits equal
//     credits, no account past its limit: Ledger::verify() CHECKs them).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ledger/ledger.h"
#include "ledger/usage_log.h"

using namespace headroom;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  auto batch = ledger::decode_commands(input);
  if (batch) {
    if (ledger::encode_commands(*batch) != input) {
      std::fprintf(stderr, "a decoded batch of %zu commands re-encodes differently\n", batch->size());
      std::abort();
    }
    ledger::Ledger book;
    for (const ledger::Command& command : *batch) (void)book.apply(command);
    book.verify();
  }

  auto event = ledger::decode_usage_event(input);
  if (event) {
    std::string again;
    ledger::encode_usage_event(*event, again);
    if (again != input) {
      std::fprintf(stderr, "a decoded usage event re-encodes differently\n");
      std::abort();
    }
  }
  return 0;
}
