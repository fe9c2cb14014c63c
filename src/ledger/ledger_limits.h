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
inline constexpr std::size_t kRecordLogScanChunkBytes = 1024 * 1024;         // one read of a scan
inline constexpr std::size_t kRecordLogHeaderBytes = 24;                     // the record header (record_log.h's table)

// Usage events (usage.h, usage_log.h).
inline constexpr std::size_t kUsageIdBytes = 256;                  // an event's id, made by its source
inline constexpr std::size_t kUsageTextBytes = 256;                // tenant, item, variant, source id: each at most
inline constexpr std::int64_t kUsageQuantityMax = 10'000'000'000;  // GPU-ms (115 GPU-days) or tokens, per event
inline constexpr std::size_t kUsageBatchEvents = 16'384;           // events in one record() call
inline constexpr std::uint64_t kUsageLogEvents = 100'000'000;      // distinct events one UsageLog holds (its id index)

// The encoding of one event (usage_log.h): 48 fixed bytes and five strings.
inline constexpr std::size_t kUsageEventBytesMax = 48 + kUsageIdBytes + 4 * kUsageTextBytes;

static_assert(kUsageEventBytesMax <= kRecordLogPayloadBytes, "an event fits one record");
static_assert(kUsageBatchEvents * (kUsageEventBytesMax + kRecordLogHeaderBytes) <= kRecordLogQueueBytes,
              "one record() batch fits the writer's queue");
static_assert(kRecordLogPayloadBytes + kRecordLogHeaderBytes <= kRecordLogQueueBytes, "any record fits the queue");
static_assert(kRecordLogScanChunkBytes >= kRecordLogPayloadBytes + kRecordLogHeaderBytes,
              "a scan reads any record in one chunk");
static_assert(kUsageIdBytes <= 0xffff && kUsageTextBytes <= 0xffff, "string lengths are encoded in 16 bits");
static_assert(kUsageLogEvents * static_cast<std::uint64_t>(kUsageQuantityMax) <= 9'223'372'036'854'775'807ULL,
              "a sum of quantities fits an int64");

}  // namespace headroom::limits
