// Limits of the ledger. They sit beside common/limits.h in the same
// namespace, so code reads limits::kUsageBatchEvents the way it reads
// limits::kHttpBodyBytes. Every queue, loop and input of the ledger is
// bounded by one of these.
#pragma once

#include <cstddef>
#include <cstdint>

namespace headroom::limits {

// RecordLog (record_log.h): the durable, group-committed log of records.
inline constexpr std::size_t kRecordLogPayloadBytes = 64 * 1024;  // one record's payload at most
// Records enqueued and not yet taken by the writer; producers wait past it.
inline constexpr std::size_t kRecordLogQueueBytes = 64 * 1024 * 1024;
inline constexpr std::uint64_t kRecordLogFileBytes = 64ULL << 30;  // one log file; appends past it are refused
inline constexpr std::uint64_t kRecordLogZeroAheadBytes = 16 * 1024 * 1024;  // zero-filled ahead of the log's end
inline constexpr std::uint64_t kRecordLogZeroStepBytes = 1024 * 1024;        // ... at most this much more per write
inline constexpr std::size_t kRecordLogScanChunkBytes = 1024 * 1024;         // one read of a scan
inline constexpr std::size_t kRecordLogHeaderBytes = 24;                     // the record header (record_log.h's table)

// Usage events (usage.h, usage_log.h).
inline constexpr std::size_t kUsageIdBytes = 256;                  // an event's id, made by its source
inline constexpr std::size_t kUsageTextBytes = 256;                // tenant, item, variant, source id, key id: each at most
inline constexpr std::int64_t kUsageQuantityMax = 10'000'000'000;  // GPU-ms (115 GPU-days) or tokens, per event
inline constexpr std::size_t kUsageBatchEvents = 16'384;           // events in one record() call
inline constexpr std::uint64_t kUsageLogEvents = 100'000'000;      // distinct events one UsageLog holds (its id index)

// The encoding of one event (usage_log.h): 48 fixed bytes and six strings.
inline constexpr std::size_t kUsageEventBytesMax = 48 + kUsageIdBytes + 5 * kUsageTextBytes;

static_assert(kUsageEventBytesMax <= kRecordLogPayloadBytes, "an event fits one record");
static_assert(kUsageBatchEvents * (kUsageEventBytesMax + kRecordLogHeaderBytes) <= kRecordLogQueueBytes,
              "one record() batch fits the writer's queue");
static_assert(kRecordLogPayloadBytes + kRecordLogHeaderBytes <= kRecordLogQueueBytes, "any record fits the queue");
static_assert(kRecordLogScanChunkBytes >= kRecordLogPayloadBytes + kRecordLogHeaderBytes,
              "a scan reads any record in one chunk");
static_assert(kUsageIdBytes <= 0xffff && kUsageTextBytes <= 0xffff, "string lengths are encoded in 16 bits");
static_assert(kUsageLogEvents * static_cast<std::uint64_t>(kUsageQuantityMax) <= 9'223'372'036'854'775'807ULL,
              "a sum of quantities fits an int64");

// ---- The ledger's pure core: accounts and transfers (ledger.h), rating
// (rating.h) and invoices (invoice.h). Amounts inside the ledger are exact
// (ledger.h's Amount: 1/18,000,000 of a nano-dollar in a signed 128-bit
// integer); the bounds below make every sum the ledger keeps fit it.


// Accounts and transfers the in-memory ledger holds. A transfer stays for
// idempotency and reversals; about 150 bytes each with its index entry.
inline constexpr std::size_t kLedgerAccounts = 4'000'000;  // a few per tenant, plus revenue and funding
inline constexpr std::size_t kLedgerTransfers = 100'000'000;
inline constexpr std::size_t kLedgerOwnerBytes = 128;  // an account's owner: a tenant id, a product name

// Commands in one apply() batch, and so in one linked chain.
inline constexpr std::size_t kLedgerBatchCommands = 8'190;

// One transfer moves at most this many whole dollars (a billion), so any
// amount of one transfer is also a Money (int64 nano-dollars, to $9.2e9).
inline constexpr std::int64_t kLedgerTransferDollarsMax = 1'000'000'000;
// A hold expires at most this long after it is made: longer than a job's
// longest run (30 days), so one hold can cover a whole job.
inline constexpr std::int64_t kLedgerHoldTimeoutMsMax = 32LL * 24 * 3600 * 1000;

// Rating: a usage event's quantity (GPU-ms or tokens) and a unit price
// (per GPU-hour or per million tokens) at most.
inline constexpr std::int64_t kRatingQuantityMax = 1'000'000'000'000;  // 1e12: 31 GPU-years in milliseconds
inline constexpr std::int64_t kRatingUnitPriceDollarsMax = 1'000;      // per GPU-hour or per million tokens
inline constexpr std::size_t kRatingPriceVersions = 1'000'000;         // entries in one PriceBook
inline constexpr std::size_t kCatalogVersionsPerChange = 1'000;      // price versions one set_prices() adds

// Invoices: rated charges and adjustments on one monthly statement.
inline constexpr std::size_t kInvoiceCharges = 50'000'000;
inline constexpr std::size_t kInvoiceAdjustments = 10'000;
inline constexpr std::size_t kInvoiceLabelBytes = 256;

// The largest encoded command (ledger.h's table): a create_account with the
// longest owner.
inline constexpr std::size_t kLedgerCommandBytesMax = 11 + 28 + kLedgerOwnerBytes;

static_assert(kRatingQuantityMax >= kUsageQuantityMax, "every usage event the usage log accepts can be rated");
static_assert(kLedgerCommandBytesMax <= kRecordLogPayloadBytes, "a command fits one record of the durable log");
static_assert(kLedgerOwnerBytes <= 0xffff, "an owner's length is encoded in 16 bits");
static_assert(kLedgerOwnerBytes >= kUsageTextBytes / 2, "a tenant id fits an account's owner");
static_assert(kLedgerBatchCommands <= kLedgerTransfers);
static_assert(kLedgerTransfers < (std::size_t{1} << 32) - 1 && kLedgerAccounts < (std::size_t{1} << 32) - 1,
              "row indexes fit a uint32 with room for a sentinel");
// The most one event can cost, per million tokens (the coarser unit of
// quantity), fits one transfer.
static_assert(kRatingQuantityMax / 1'000'000 * kRatingUnitPriceDollarsMax <= kLedgerTransferDollarsMax,
              "a rated charge fits one transfer");
static_assert(kInvoiceCharges <= kLedgerTransfers, "an invoice's charges fit the sums' bound (ledger.h)");
// No counter overflows: ledger.h checks that kLedgerTransfers transfers of
// the largest amount fit its 128-bit Amount.

}  // namespace headroom::limits
