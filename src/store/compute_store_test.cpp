// The raw-compute part of the Store: jobs with group-committed inserts and
// idempotency keys, their history, quotas, node states and reservations.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "store/store.h"

namespace headroom::store {
namespace {

class ComputeStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Store::open({":memory:"});
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    store_ = std::move(opened).value();
    for (const char* id : {"ten_a", "ten_b"}) {
      Tenant t{id, std::string("name-") + id, TenantKind::kExternal, Timestamp{1}};
      ASSERT_TRUE(store_->create_tenant(t, audit("create " + std::string(id))).is_ok());
    }
  }

  AuditRecord audit(const std::string& what) {
    return AuditRecord{0, "aud_" + std::to_string(++audits_), Timestamp{1}, "", "", "", "test", what, "{}"};
  }

  static JobRecord job(std::int64_t seq, const std::string& tenant) {
    JobRecord j;
    j.id = "job_" + std::to_string(seq);
    j.seq = seq;
    j.tenant_id = tenant;
    j.spec_json = R"({"gpus":1})";
    j.state = "queued";
    j.reason = "submitted";
    j.created_at = j.state_at = Timestamp{1000 + seq};
    return j;
  }

  std::unique_ptr<Store> store_;
  int audits_ = 0;
};

TEST_F(ComputeStoreTest, BatchInsertWithIdempotencyKeys) {
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

TEST_F(ComputeStoreTest, AFailedBatchKeepsNothing) {
  std::vector<JobInsert> batch(2);
  batch[0].job = job(1, "ten_a");
  batch[1].job = job(2, "ten_missing");  // foreign key: no such tenant
  EXPECT_FALSE(store_->insert_jobs(batch).is_ok());
  EXPECT_FALSE(store_->find_job("job_1")->has_value());
  EXPECT_EQ(*store_->max_job_seq(), 0);
}

TEST_F(ComputeStoreTest, UpdatesHistoryListingAndLiveJobs) {
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

TEST_F(ComputeStoreTest, QuotasNodeStatesAndReservations) {
  ASSERT_TRUE(store_->set_quota("ten_a", R"({"max_queued_jobs":3})", audit("q")).is_ok());
  EXPECT_EQ(**store_->find_quota("ten_a"), R"({"max_queued_jobs":3})");
  ASSERT_TRUE(store_->set_quota("ten_a", "", audit("q")).is_ok());
  EXPECT_FALSE(store_->find_quota("ten_a")->has_value());

  ASSERT_TRUE(store_->set_node_state("n1", "cordoned", audit("n")).is_ok());
  ASSERT_TRUE(store_->set_node_state("n2", "draining", audit("n")).is_ok());
  ASSERT_TRUE(store_->set_node_state("n2", "up", audit("n")).is_ok());
  auto states = store_->node_states();
  ASSERT_TRUE(states.is_ok());
  ASSERT_EQ(states->size(), 1u);
  EXPECT_EQ((*states)[0], std::make_pair(std::string("n1"), std::string("cordoned")));

  ReservationRecord r{"res_1", "ten_a", "h100", 8, "any", Timestamp{100}, Timestamp{200}, Timestamp{1}, {}};
  ASSERT_TRUE(store_->create_reservation(r, audit("r")).is_ok());
  EXPECT_EQ(store_->live_reservations(Timestamp{150})->size(), 1u);
  EXPECT_EQ(store_->live_reservations(Timestamp{200})->size(), 0u);
  EXPECT_EQ(store_->list_reservations("ten_b", {10, ""})->items.size(), 0u);
  EXPECT_EQ(store_->list_reservations("", {10, ""})->items.size(), 1u);
  ASSERT_TRUE(store_->cancel_reservation("res_1", Timestamp{120}, audit("c")).is_ok());
  EXPECT_EQ(store_->cancel_reservation("res_1", Timestamp{121}, audit("c")).code(), ErrorCode::kConflict);
  EXPECT_EQ(store_->cancel_reservation("res_x", Timestamp{121}, audit("c")).code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->live_reservations(Timestamp{150})->size(), 0u);
}

}  // namespace
}  // namespace headroom::store
