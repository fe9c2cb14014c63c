// The raw-compute part of the Store: jobs with group-committed inserts and
// idempotency keys, their history, quotas, node states and reservations.
// Checked against every store (see store_test_util.h).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "store/store_test_util.h"

namespace headroom::store {
namespace {

using namespace headroom::store::testing;  // NOLINT: the suite's vocabulary

TEST_P(ComputeStoreTest, BatchInsertWithIdempotencyKeys) {
  std::vector<JobInsert> batch(3);
  batch[0].job = job(1, "ten_a");
  batch[0].idempotency_key = "k1";
  batch[0].request_sha256 = "h1";
  batch[1].job = job(2, "ten_a");
  batch[2].job = job(3, "ten_b");
  batch[2].idempotency_key = "k1";  // the same key, another tenant: independent
  batch[2].request_sha256 = "h3";
  ASSERT_TRUE(store_->insert_jobs(batch).is_ok());
  for (auto& item : batch) EXPECT_TRUE(item.status.is_ok() && !item.replay);
  EXPECT_EQ(*store_->max_job_seq(), 3);

  // A retry returns the first job; the same key with another request is a conflict.
  std::vector<JobInsert> again(2);
  again[0].job = job(4, "ten_a");
  again[0].idempotency_key = "k1";
  again[0].request_sha256 = "h1";
  again[1].job = job(5, "ten_a");
  again[1].idempotency_key = "k1";
  again[1].request_sha256 = "other";
  ASSERT_TRUE(store_->insert_jobs(again).is_ok());
  ASSERT_TRUE(again[0].replay.has_value());
  EXPECT_EQ(again[0].replay->id, "job_1");
  EXPECT_EQ(again[1].status.code(), ErrorCode::kConflict);
  EXPECT_FALSE(store_->find_job("job_4")->has_value());
  EXPECT_FALSE(store_->find_job("job_5")->has_value());
  EXPECT_EQ(*store_->max_job_seq(), 3);
}

TEST_P(ComputeStoreTest, OneIdempotencyKeyTwiceInOneBatch) {
  std::vector<JobInsert> batch(3);
  for (int i = 0; i < 3; ++i) {
    batch[i].job = job(i + 1, "ten_a");
    batch[i].idempotency_key = "k";
    batch[i].request_sha256 = i == 2 ? "other" : "h";
  }
  ASSERT_TRUE(store_->insert_jobs(batch).is_ok());
  EXPECT_TRUE(batch[0].status.is_ok() && !batch[0].replay);
  ASSERT_TRUE(batch[1].replay.has_value());
  EXPECT_EQ(batch[1].replay->id, "job_1");
  EXPECT_EQ(batch[1].replay->spec_json, batch[0].job.spec_json);
  EXPECT_EQ(batch[2].status.code(), ErrorCode::kConflict);
  EXPECT_EQ(*store_->max_job_seq(), 1);
  EXPECT_EQ(store_->list_jobs({}, {10, ""})->items.size(), 1u);
}

TEST_P(ComputeStoreTest, AFailedBatchKeepsNothing) {
  std::vector<JobInsert> batch(2);
  batch[0].job = job(1, "ten_a");
  batch[1].job = job(2, "ten_missing");  // foreign key: no such tenant
  EXPECT_FALSE(store_->insert_jobs(batch).is_ok());
  EXPECT_FALSE(store_->find_job("job_1")->has_value());
  EXPECT_EQ(*store_->max_job_seq(), 0);
}

TEST_P(ComputeStoreTest, UpdatesHistoryListingAndLiveJobs) {
  std::vector<JobInsert> batch(3);
  for (int i = 0; i < 3; ++i) batch[i].job = job(i + 1, i == 2 ? "ten_b" : "ten_a");
  ASSERT_TRUE(store_->insert_jobs(batch).is_ok());

  JobUpdate u;
  u.job = job(1, "ten_a");
  u.job.state = "succeeded";
  u.job.reason = "exited";
  u.job.exit_code = 0;
  u.job.gpus = "n1:0";
  u.job.ended_at = Timestamp{5000};
  u.event = JobEvent{"job_1", Timestamp{5000}, "succeeded", "exited", ""};
  ASSERT_TRUE(store_->update_jobs({&u, 1}).is_ok());

  auto found = store_->find_job("job_1");
  ASSERT_TRUE(found.is_ok() && found->has_value());
  EXPECT_EQ((*found)->state, "succeeded");
  EXPECT_EQ((*found)->exit_code, 0);
  EXPECT_EQ((*found)->gpus, "n1:0");
  auto events = store_->job_events("job_1");
  ASSERT_TRUE(events.is_ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].state, "queued");
  EXPECT_EQ((*events)[1].state, "succeeded");

  auto live = store_->unsettled_jobs();
  ASSERT_TRUE(live.is_ok());
  ASSERT_EQ(live->size(), 2u);
  EXPECT_EQ((*live)[0].id, "job_2");
  // An ended job whose GPU time is not all emitted yet is still unsettled.
  u.job.usage_until = Timestamp{4000};
  u.event = {};
  ASSERT_TRUE(store_->update_jobs({&u, 1}).is_ok());
  EXPECT_EQ(store_->unsettled_jobs()->size(), 3u);
  u.job.usage_until = Timestamp{5000};
  ASSERT_TRUE(store_->update_jobs({&u, 1}).is_ok());
  EXPECT_EQ(store_->unsettled_jobs()->size(), 2u);

  // Newest first, one tenant's only, keyset pages.
  auto page = store_->list_jobs({"ten_a", ""}, {1, ""});
  ASSERT_TRUE(page.is_ok());
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->items[0].id, "job_2");
  EXPECT_TRUE(page->has_more);
  page = store_->list_jobs({"ten_a", ""}, {1, "job_2"});
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->items[0].id, "job_1");
  EXPECT_FALSE(page->has_more);
  EXPECT_EQ(store_->list_jobs({"", "queued"}, {10, ""})->items.size(), 2u);

  // Updating a job that does not exist is an error, and rolls back the batch.
  JobUpdate ghost = u;
  ghost.job = job(9, "ten_a");
  std::vector<JobUpdate> both{u, ghost};
  both[0].job.state = "failed";
  EXPECT_FALSE(store_->update_jobs(both).is_ok());
  EXPECT_EQ((*store_->find_job("job_1"))->state, "succeeded");
}

TEST_P(ComputeStoreTest, QuotasNodeStatesAndReservations) {
  ASSERT_TRUE(store_->set_quota("ten_a", R"({"max_queued_jobs":3})", next_audit("q")).is_ok());
  EXPECT_EQ(**store_->find_quota("ten_a"), R"({"max_queued_jobs":3})");
  ASSERT_TRUE(store_->set_quota("ten_a", "", next_audit("q")).is_ok());
  EXPECT_FALSE(store_->find_quota("ten_a")->has_value());

  ASSERT_TRUE(store_->set_node_state("n1", "cordoned", next_audit("n")).is_ok());
  ASSERT_TRUE(store_->set_node_state("n2", "draining", next_audit("n")).is_ok());
  ASSERT_TRUE(store_->set_node_state("n2", "up", next_audit("n")).is_ok());
  auto states = store_->node_states();
  ASSERT_TRUE(states.is_ok());
  ASSERT_EQ(states->size(), 1u);
  EXPECT_EQ((*states)[0], std::make_pair(std::string("n1"), std::string("cordoned")));
  // Sorted byte by byte, whatever the database's locale.
  for (const char* node : {"n2", "N3", "n10"}) {
    ASSERT_TRUE(store_->set_node_state(node, "draining", next_audit("n")).is_ok());
  }
  auto sorted = store_->node_states();
  ASSERT_TRUE(sorted.is_ok());
  std::vector<std::string> order;
  for (const auto& [node, state] : *sorted) order.push_back(node);
  EXPECT_EQ(order, (std::vector<std::string>{"N3", "n1", "n10", "n2"}));

  ReservationRecord r{"res_1", "ten_a", "h100", 8, "any", Timestamp{100}, Timestamp{200}, Timestamp{1}, {}};
  ASSERT_TRUE(store_->create_reservation(r, next_audit("r")).is_ok());
  EXPECT_EQ(store_->live_reservations(Timestamp{150})->size(), 1u);
  EXPECT_EQ(store_->live_reservations(Timestamp{200})->size(), 0u);
  EXPECT_EQ(store_->list_reservations("ten_b", {10, ""})->items.size(), 0u);
  EXPECT_EQ(store_->list_reservations("", {10, ""})->items.size(), 1u);
  ASSERT_TRUE(store_->cancel_reservation("res_1", Timestamp{120}, next_audit("c")).is_ok());
  EXPECT_EQ(store_->cancel_reservation("res_1", Timestamp{121}, next_audit("c")).code(), ErrorCode::kConflict);
  EXPECT_EQ(store_->cancel_reservation("res_x", Timestamp{121}, next_audit("c")).code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->live_reservations(Timestamp{150})->size(), 0u);
}

}  // namespace
}  // namespace headroom::store
