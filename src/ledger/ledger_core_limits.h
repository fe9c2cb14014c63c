// Limits of the ledger's pure core: accounts and transfers (ledger.h),
// rating (rating.h) and invoices (invoice.h). They sit beside
// ledger/ledger_limits.h (the durable logs) in the same namespace, so code
// reads limits::kLedgerTransfers the way it reads limits::kUsageBatchEvents.
//
// Amounts inside the ledger are exact (ledger.h's Amount: 1/18,000,000 of a
// nano-dollar in a signed 128-bit integer); the bounds below make every sum
// the ledger keeps fit that integer, so no counter can overflow.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ledger/ledger_limits.h"

namespace headroom::limits {

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
