// Raw compute: jobs (submit, list, show, logs, cancel), node cordon and
// drain, surplus, quotas and reservations. The ComputeService does the work;
// these routes check input, ownership and scope, and shape the JSON.
#include <boost/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "api/json_body.h"
#include "api/route_util.h"
#include "api/router.h"
#include "api/services.h"
#include "common/crypto.h"
#include "common/ids.h"
#include "common/limits.h"
#include "compute/job_spec.h"
#include "compute/quota.h"

namespace headroom::api {
namespace {

namespace json = boost::json;

constexpr std::size_t kLogReadBytes = 4 * 1024 * 1024;  // one answer of GET .../logs without follow
constexpr std::size_t kLogChunkBytes = 64 * 1024;       // one chunk of a followed log

json::array gpu_list(std::string_view text) {
  json::array out;
  while (!text.empty()) {
    std::size_t comma = text.find(',');
    out.emplace_back(text.substr(0, comma));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

json::object job_json(const store::JobRecord& j) {
  boost::system::error_code ec;
  json::value spec = json::parse(j.spec_json, ec);
  json::object out{{"id", j.id},
                   {"tenant_id", j.tenant_id},
                   {"state", j.state},
                   {"reason", j.reason},
                   {"message", j.message},
                   {"exit_code", j.exit_code ? json::value(*j.exit_code) : json::value(nullptr)},
                   {"assigned_gpus", gpu_list(j.gpus)},
                   {"created_at", to_rfc3339(j.created_at)},
                   {"started_at", json_time(j.started_at)},
                   {"ended_at", json_time(j.ended_at)},
                   {"preemptions", j.preemptions}};
  if (const json::object* o = spec.if_object()) {
    out["gpus"] = o->at("gpus");
    out["tier"] = o->at("tier");
    out["gpu_type"] = j.gpu_type.empty() ? o->at("gpu_type") : json::value(j.gpu_type);
    out["command"] = o->at("command");
    out["spec"] = std::move(spec);
  }
  return out;
}

bool is_terminal_state(std::string_view state) {
  auto parsed = sched::parse_job_state(state);
  return parsed && sched::is_terminal(*parsed);
}

Result<std::optional<std::string>> job_owner(Services& s, std::string_view id) {
  HR_ASSIGN_OR_RETURN(auto job, s.store.find_job(std::string(id)));
  if (!job) return std::optional<std::string>();
  return std::optional<std::string>(job->tenant_id);
}

Result<std::optional<std::string>> reservation_owner(Services& s, std::string_view id) {
  HR_ASSIGN_OR_RETURN(auto r, s.store.find_reservation(std::string(id)));
  if (!r) return std::optional<std::string>();
  return std::optional<std::string>(r->tenant_id);
}

Status submit_job(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(compute::JobSpec spec, compute::parse_job_spec(ctx.http.body));
  if (spec.tier == sched::Tier::kInternal && ctx.caller.tenant().kind != store::TenantKind::kInternal) {
    return Status::permission_denied("the internal tier is only for the owner's internal tenants");
  }
  if (spec.reservation_id) {
    HR_ASSIGN_OR_RETURN(auto reservation, s.store.find_reservation(*spec.reservation_id));
    if (!reservation || reservation->tenant_id != ctx.caller.tenant_id()) {
      return Status::invalid_argument("reservation " + *spec.reservation_id + " not found");
    }
    if (reservation->cancelled_at) return Status::invalid_argument("reservation " + reservation->id + " is cancelled");
    if (reservation->end <= s.clock.now()) return Status::invalid_argument("reservation " + reservation->id + " has ended");
  }
  // Paid work needs money left (402 otherwise); its run holds its first window as it starts.
  if (s.billing != nullptr && (spec.tier == sched::Tier::kOnDemand || spec.tier == sched::Tier::kSpot)) {
    HR_RETURN_IF_ERROR(s.billing->admit(ctx.caller.tenant_id()));
  }
  HR_ASSIGN_OR_RETURN(std::string_view key, idempotency_key(ctx.http));

  compute::Submission submission;
  submission.record.id = make_id(kJobIdPrefix, s.random);
  submission.record.tenant_id = ctx.caller.tenant_id();
  submission.record.spec_json = compute::to_json(spec);
  submission.idempotency_key = std::string(key);
  submission.request_sha256 = to_hex(sha256(submission.record.spec_json));
  submission.spec = std::move(spec);
  auto later = response.defer();
  s.compute->submit(std::move(submission),
                    [later, request_id = std::string(ctx.http.request_id)](Result<compute::Submitted> done) {
                      net::HttpResponse out;
                      if (!done) {
                        write_error(out, done.status(), request_id);
                      } else {
                        write_json(out, done->replayed ? 200 : 201, job_json(done->job));
                        if (done->replayed) out.headers.emplace_back("Idempotent-Replayed", "true");
                      }
                      later->complete(std::move(out));
                    });
  return Status::ok();
}

Status show_job(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  std::string id(ctx.param("id"));
  HR_ASSIGN_OR_RETURN(auto job, s.store.find_job(id));
  if (!job) return Status::not_found("job " + id + " not found");
  json::object out = job_json(*job);
  HR_ASSIGN_OR_RETURN(auto events, s.store.job_events(id));
  json::array history;
  for (const auto& e : events) {
    history.push_back(json::object{
        {"state", e.state}, {"at", to_rfc3339(e.time)}, {"reason", e.reason}, {"message", e.message}});
  }
  out["history"] = std::move(history);
  std::size_t position = job->state == "queued" ? s.compute->queue_position(id) : 0;
  out["queue_position"] = position > 0 ? json::value(position) : json::value(nullptr);
  write_json(response, 200, out);
  return Status::ok();
}

Status list_jobs(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(auto page, page_request(ctx.http));
  store::JobFilter filter;
  std::string value;
  if (net::query_param(ctx.http.query, "state", value)) {
    if (!sched::parse_job_state(value)) {
      return Status::invalid_argument("query parameter \"state\" must be a job state, such as running");
    }
    filter.state = value;
  }
  // Everyone sees their own jobs; the admin sees all, or one tenant's with ?tenant_id=.
  if (ctx.caller.is_admin()) {
    if (net::query_param(ctx.http.query, "tenant_id", value)) filter.tenant_id = value.substr(0, 64);
  } else {
    filter.tenant_id = ctx.caller.tenant_id();
  }
  HR_ASSIGN_OR_RETURN(auto jobs, s.store.list_jobs(filter, page));
  write_page(response, jobs, job_json);
  return Status::ok();
}

Status cancel_job(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  std::string id(ctx.param("id"));
  auto later = response.defer();
  s.compute->cancel(id, [&s, later, id, request_id = std::string(ctx.http.request_id)](Status done) {
    net::HttpResponse out;
    auto job = done ? s.store.find_job(id) : Result<std::optional<store::JobRecord>>(done);
    if (!job) write_error(out, job.status(), request_id);
    else if (!*job) write_error(out, Status::not_found("job " + id + " not found"), request_id);
    else write_json(out, 200, job_json(**job));
    later->complete(std::move(out));
  });
  return Status::ok();
}

// Follows a job's log as it grows, until the job has ended and all is sent.
class LogFollower final : public net::BodyStream {
 public:
  LogFollower(Services& s, std::string job_id, int fd, std::uint64_t offset)
      : s_(s), job_id_(std::move(job_id)), fd_(fd), offset_(offset) {}
  ~LogFollower() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Next next(std::string& out) override {
    if (read_some(out)) return Next::kData;
    // Nothing new: done once the job has ended and a last read finds nothing.
    auto job = s_.store.find_job(job_id_);
    if (!job || !*job || is_terminal_state((*job)->state)) {
      while (read_some(out)) {
        if (out.size() >= kLogChunkBytes) return Next::kData;
      }
      return Next::kEnd;
    }
    return Next::kWait;
  }

 private:
  bool read_some(std::string& out) {
    if (fd_ < 0) {
      // The log appears when the job starts.
      std::string path = s_.compute->executor().log_path(job_id_);
      fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd_ < 0) return false;
    }
    std::size_t old = out.size();
    out.resize(old + kLogChunkBytes);
    ssize_t n = ::pread(fd_, out.data() + old, kLogChunkBytes, static_cast<off_t>(offset_));
    out.resize(old + static_cast<std::size_t>(n > 0 ? n : 0));
    if (n <= 0) return false;
    offset_ += static_cast<std::uint64_t>(n);
    return true;
  }

  Services& s_;
  std::string job_id_;
  int fd_;
  std::uint64_t offset_;
};

Status job_logs(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  std::string id(ctx.param("id"));
  std::string value;
  std::uint64_t offset = 0;
  if (net::query_param(ctx.http.query, "offset", value)) {
    bool ok = !value.empty() && value.size() <= 15;
    for (char c : value) ok = ok && c >= '0' && c <= '9';
    if (!ok) return Status::invalid_argument("query parameter \"offset\" must be a whole number of bytes");
    offset = std::stoull(value);
  }
  bool follow = net::query_param(ctx.http.query, "follow", value) && (value == "true" || value == "1");
  response.status = 200;
  response.content_type = "text/plain; charset=utf-8";
  std::string path = s.compute->executor().log_path(id);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (follow) {
    response.stream = std::make_shared<LogFollower>(s, id, fd, offset);
    return Status::ok();
  }
  if (fd >= 0) {
    response.body.resize(kLogReadBytes);
    ssize_t n = ::pread(fd, response.body.data(), kLogReadBytes, static_cast<off_t>(offset));
    ::close(fd);
    response.body.resize(static_cast<std::size_t>(n > 0 ? n : 0));
  }
  response.headers.emplace_back("X-Next-Offset", std::to_string(offset + response.body.size()));
  return Status::ok();
}

Status node_action(Services& s, RequestContext& ctx, net::HttpResponse& response, fleet::NodeState state,
                   std::string_view action) {
  std::string node(ctx.param("name"));
  HR_RETURN_IF_ERROR(s.compute->set_node_state(
      node, state, audit(s, ctx, "node." + std::string(action), node, {{"state", fleet::node_state_name(state)}})));
  write_json(response, 200, json::object{{"node", node}, {"state", fleet::node_state_name(state)}});
  return Status::ok();
}

Status surplus(Services& s, RequestContext&, net::HttpResponse& response) {
  json::array data;
  for (const sched::TypeSurplus& t : s.compute->surplus()) {
    data.push_back(json::object{{"gpu_type", t.gpu_type},
                                {"total", t.total},
                                {"down", t.down},
                                {"internal_in_use", t.internal_in_use},
                                {"internal_buffer", t.internal_buffer},
                                {"reserved", t.reserved},
                                {"on_demand", t.on_demand},
                                {"spot", t.spot},
                                {"idle", t.idle},
                                {"sellable_now", t.sellable_now}});
  }
  write_json(response, 200, json::object{{"data", std::move(data)}});
  return Status::ok();
}

Status put_quota(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  std::string tenant(ctx.param("id"));
  HR_ASSIGN_OR_RETURN(compute::ComputeQuota quota, compute::parse_quota(ctx.http.body));
  for (const auto& limit : quota.limits.gpu_limits) {
    if (!limit.gpu_type.empty() && !fleet::find_gpu_type(s.fleet, limit.gpu_type)) {
      return Status::invalid_argument("gpu_limits: the fleet has no GPU type \"" + limit.gpu_type.substr(0, 32) + "\"");
    }
  }
  std::string text = compute::to_json(quota);
  HR_RETURN_IF_ERROR(s.compute->set_quota(tenant, quota, audit(s, ctx, "quota.set", tenant, json::parse(text).as_object())));
  response.status = 200;
  response.body = std::move(text);
  return Status::ok();
}

Status get_quota(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(auto quota, s.store.find_quota(std::string(ctx.param("id"))));
  response.status = 200;
  response.body = quota ? *quota : compute::to_json(compute::ComputeQuota{});
  return Status::ok();
}

json::object reservation_json(const store::ReservationRecord& r) {
  return {{"id", r.id},         {"tenant_id", r.tenant_id},          {"gpu_type", r.gpu_type},
          {"gpus", r.gpus},     {"packing", r.packing},              {"start", to_rfc3339(r.start)},
          {"end", to_rfc3339(r.end)}, {"created_at", to_rfc3339(r.created_at)},
          {"cancelled_at", json_time(r.cancelled_at)}};
}

// POST /v1/reservations/quote: {"gpu_type","gpus","start","end","packing"}
// for the caller's tenant: the snapped window, what is free for it, the
// price (held when booked) and when the quote expires.
Status quote_reservation(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(JsonBody body, JsonBody::parse(ctx.http.body));
  HR_RETURN_IF_ERROR(body.only_fields({"gpu_type", "gpus", "packing", "start", "end"}));
  compute::BlockRequest request;
  request.tenant_id = ctx.caller.tenant_id();
  HR_ASSIGN_OR_RETURN(request.gpu_type, body.required_string("gpu_type", limits::kGpuTypeNameBytes));
  const json::value* gpus = body.object().if_contains("gpus");
  if (gpus == nullptr || !gpus->is_int64() || gpus->get_int64() < 1 || gpus->get_int64() > limits::kSchedGangGpus) {
    return Status::invalid_argument("field \"gpus\" must be a whole number from 1 to " +
                                    std::to_string(limits::kSchedGangGpus));
  }
  request.gpus = static_cast<std::uint32_t>(gpus->get_int64());
  HR_ASSIGN_OR_RETURN(auto packing, body.optional_string("packing", 16));
  HR_ASSIGN_OR_RETURN(request.packing, sched::parse_packing(packing.value_or("any")));
  HR_ASSIGN_OR_RETURN(auto start, body.optional_time("start"));
  HR_ASSIGN_OR_RETURN(auto end, body.optional_time("end"));
  if (!start || !end) return Status::invalid_argument("fields \"start\" and \"end\" are required (RFC 3339)");
  request.start = *start;
  request.end = *end;
  HR_ASSIGN_OR_RETURN(compute::BlockQuote quote, s.compute->quote_block(std::move(request), make_id("quo", s.random)));
  write_json(response, 200,
             json::object{{"quote_id", quote.id},
                          {"gpu_type", quote.request.gpu_type},
                          {"gpus", quote.request.gpus},
                          {"packing", sched::packing_name(quote.request.packing)},
                          {"start", to_rfc3339(quote.request.start)},
                          {"end", to_rfc3339(quote.request.end)},
                          {"available", quote.available},
                          {"price_per_gpu_hour", quote.price_per_gpu_hour.to_string()},
                          {"price", quote.total.to_string()},
                          {"currency", "USD"},
                          {"expires_at", to_rfc3339(quote.expires_at)}});
  return Status::ok();
}

// POST /v1/reservations: {"quote_id":"..."} books a quote for the caller's
// tenant; the admin may instead book a block for any tenant, unpriced, with
// {"tenant_id","gpu_type","gpus","packing","start","end"}.
Status create_reservation(Services& s, RequestContext& ctx, net::HttpResponse& response) {
  HR_ASSIGN_OR_RETURN(JsonBody body, JsonBody::parse(ctx.http.body));
  if (body.object().contains("quote_id")) {
    HR_RETURN_IF_ERROR(body.only_fields({"quote_id"}));
    HR_ASSIGN_OR_RETURN(std::string quote_id, body.required_string("quote_id", 64));
    const std::string id = make_id(kReservationIdPrefix, s.random);
    HR_ASSIGN_OR_RETURN(store::ReservationRecord r,
                        s.compute->book_block(ctx.caller.tenant_id(), quote_id, id,
                                              audit(s, ctx, "reservation.book", id, {{"quote_id", quote_id}})));
    write_json(response, 201, reservation_json(r));
    return Status::ok();
  }
  if (!ctx.caller.is_admin()) {
    return Status::permission_denied("book a block with {\"quote_id\"} from POST /v1/reservations/quote");
  }
  HR_RETURN_IF_ERROR(body.only_fields({"tenant_id", "gpu_type", "gpus", "packing", "start", "end"}));
  store::ReservationRecord r;
  HR_ASSIGN_OR_RETURN(r.tenant_id, body.required_string("tenant_id", 64));
  HR_ASSIGN_OR_RETURN(auto tenant, s.store.find_tenant(r.tenant_id));
  if (!tenant) return Status::invalid_argument("tenant " + r.tenant_id + " not found");
  HR_ASSIGN_OR_RETURN(r.gpu_type, body.required_string("gpu_type", limits::kGpuTypeNameBytes));
  if (!fleet::find_gpu_type(s.fleet, r.gpu_type)) {
    return Status::invalid_argument("the fleet has no GPU type \"" + r.gpu_type + "\"");
  }
  const json::value* gpus = body.object().if_contains("gpus");
  if (gpus == nullptr || !gpus->is_int64() || gpus->get_int64() < 1 || gpus->get_int64() > limits::kSchedGangGpus) {
    return Status::invalid_argument("field \"gpus\" must be a whole number from 1 to " +
                                    std::to_string(limits::kSchedGangGpus));
  }
  r.gpus = gpus->get_int64();
  HR_ASSIGN_OR_RETURN(auto packing, body.optional_string("packing", 16));
  HR_ASSIGN_OR_RETURN(sched::Packing p, sched::parse_packing(packing.value_or("any")));
  r.packing = std::string(sched::packing_name(p));
  HR_ASSIGN_OR_RETURN(auto start, body.optional_time("start"));
  HR_ASSIGN_OR_RETURN(auto end, body.optional_time("end"));
  if (!start || !end) return Status::invalid_argument("fields \"start\" and \"end\" are required (RFC 3339)");
  if (*end <= *start) return Status::invalid_argument("\"end\" must be after \"start\"");
  r.start = *start;
  r.end = *end;
  r.id = make_id(kReservationIdPrefix, s.random);
  r.created_at = s.clock.now();
  if (r.end <= r.created_at) return Status::invalid_argument("the reservation would already have ended");
  HR_RETURN_IF_ERROR(s.compute->add_reservation(r, audit(s, ctx, "reservation.create", r.id, reservation_json(r))));
  write_json(response, 201, reservation_json(r));
  return Status::ok();
}

}  // namespace

void add_compute_routes(Router& router, Services& s) {
  auto job_in_path = Ownership{"job", "id", [&s](std::string_view id) { return job_owner(s, id); }};
  auto tenant_in_path = Ownership{"tenant", "id", [&s](std::string_view id) -> Result<std::optional<std::string>> {
                                    HR_ASSIGN_OR_RETURN(auto t, s.store.find_tenant(std::string(id)));
                                    if (!t) return std::optional<std::string>();
                                    return std::optional<std::string>(t->id);
                                  }};
  auto reservation_in_path =
      Ownership{"reservation", "id", [&s](std::string_view id) { return reservation_owner(s, id); }};
  auto bind = [&s](Status (*f)(Services&, RequestContext&, net::HttpResponse&)) {
    return [&s, f](RequestContext& ctx, net::HttpResponse& r) { return f(s, ctx, r); };
  };

  router.add({"POST", "/v1/jobs", Access::kAuthenticated, store::kScopeCompute, std::nullopt, bind(submit_job),
              {"Submit a job: a gang of GPUs running a command (honours Idempotency-Key)", "jobs", 201, "JobRequest",
               "Job"}});
  router.add({"GET", "/v1/jobs", Access::kAuthenticated, store::kScopeCompute, std::nullopt, bind(list_jobs),
              {"The caller's jobs, newest first (the admin's: everyone's)", "jobs", 200, "", "JobList",
               "application/json", {"limit", "after", "state", "tenant_id"}}});
  router.add({"GET", "/v1/jobs/{id}", Access::kAuthenticated, store::kScopeCompute, job_in_path, bind(show_job),
              {"A job, with its history and queue position", "jobs", 200, "", "Job"}});
  router.add({"GET", "/v1/jobs/{id}/logs", Access::kAuthenticated, store::kScopeCompute, job_in_path,
              bind(job_logs),
              {"A job's output (stdout and stderr) from ?offset=, followed while it runs with ?follow=true", "jobs",
               200, "", "", "text/plain", {"offset", "follow"}}});
  router.add({"POST", "/v1/jobs/{id}/cancel", Access::kAuthenticated, store::kScopeCompute, job_in_path,
              bind(cancel_job), {"Cancel a job: it leaves the queue, or is killed", "jobs", 200, "", "Job"}});

  for (auto [action, state] : {std::pair{"cordon", fleet::NodeState::kCordoned},
                               std::pair{"drain", fleet::NodeState::kDraining},
                               std::pair{"uncordon", fleet::NodeState::kUp}}) {
    router.add({"POST", std::string("/v1/fleet/nodes/{name}/") + action, Access::kAuthenticated, store::kScopeAdmin,
                std::nullopt,
                [&s, state = state, action = std::string(action)](RequestContext& ctx, net::HttpResponse& r) {
                  return node_action(s, ctx, r, state, action);
                },
                {std::string(action == std::string("cordon")     ? "Cordon a node: it takes no new work"
                             : action == std::string("drain") ? "Drain a node: no new work, spot jobs leave with notice"
                                                              : "Uncordon a node: it takes new work again"),
                 "fleet", 200, "", "NodeState"}});
  }
  router.add({"GET", "/v1/surplus", Access::kAuthenticated, store::kScopeAdmin, std::nullopt, bind(surplus),
              {"Per GPU type: total, internal, buffer, reserved, sold, idle and sellable now", "fleet", 200, "",
               "Surplus"}});

  router.add({"PUT", "/v1/tenants/{id}/quota", Access::kAuthenticated, store::kScopeAdmin, tenant_in_path,
              bind(put_quota), {"Set a tenant's compute quota and fair-share weight", "quotas", 200, "Quota", "Quota"}});
  router.add({"GET", "/v1/tenants/{id}/quota", Access::kAuthenticated, 0, tenant_in_path, bind(get_quota),
              {"A tenant's compute quota", "quotas", 200, "", "Quota"}});

  router.add({"POST", "/v1/reservations/quote", Access::kAuthenticated, store::kScopeCompute, std::nullopt,
              bind(quote_reservation),
              {"Quote a capacity block: the window snapped to the hour, the GPUs free for it, its price and the "
               "quote's expiry",
               "reservations", 200, "QuoteRequest", "Quote"}});
  router.add({"POST", "/v1/reservations", Access::kAuthenticated, store::kScopeCompute, std::nullopt,
              bind(create_reservation),
              {"Book a quote ({\"quote_id\"}: the price is held on the tenant's balance), or, for the admin, an "
               "unpriced block for any tenant",
               "reservations", 201, "ReservationRequest", "Reservation"}});
  router.add({"GET", "/v1/reservations", Access::kAuthenticated, store::kScopeCompute, std::nullopt,
              [&s](RequestContext& ctx, net::HttpResponse& r) -> Status {
                HR_ASSIGN_OR_RETURN(auto page, page_request(ctx.http));
                HR_ASSIGN_OR_RETURN(auto list, s.store.list_reservations(
                                                   ctx.caller.is_admin() ? "" : ctx.caller.tenant_id(), page));
                write_page(r, list, reservation_json);
                return Status::ok();
              },
              {"The caller's reservations (the admin's: all)", "reservations", 200, "", "ReservationList",
               "application/json", {"limit", "after"}}});
  router.add({"GET", "/v1/reservations/{id}", Access::kAuthenticated, store::kScopeCompute, reservation_in_path,
              [&s](RequestContext& ctx, net::HttpResponse& r) -> Status {
                HR_ASSIGN_OR_RETURN(auto found, s.store.find_reservation(std::string(ctx.param("id"))));
                if (!found) return Status::not_found("reservation not found");
                write_json(r, 200, reservation_json(*found));
                return Status::ok();
              },
              {"A reservation", "reservations", 200, "", "Reservation"}});
  router.add({"DELETE", "/v1/reservations/{id}", Access::kAuthenticated, store::kScopeCompute, reservation_in_path,
              [&s](RequestContext& ctx, net::HttpResponse& r) -> Status {
                std::string id(ctx.param("id"));
                HR_RETURN_IF_ERROR(s.compute->cancel_reservation(id, audit(s, ctx, "reservation.cancel", id, {})));
                HR_ASSIGN_OR_RETURN(auto found, s.store.find_reservation(id));
                if (!found) return Status::not_found("reservation " + id + " not found");
                write_json(r, 200, reservation_json(*found));
                return Status::ok();
              },
              {"Cancel a reservation: its running jobs get notice; a priced block is free to cancel 24 h before "
               "its start, costs a quarter of its price later, and is charged for the hours begun once started",
               "reservations", 200, "", "Reservation"}});
}

}  // namespace headroom::api
