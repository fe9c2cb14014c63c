// Health, readiness, metrics and the OpenAPI document: public routes.
#include <boost/json.hpp>

#include "api/json_body.h"
#include "api/router.h"
#include "api/services.h"

namespace headroom::api {

void add_platform_routes(Router& router, Services& s) {
  router.add({"GET", "/healthz", Access::kPublic, 0, std::nullopt,
              [](RequestContext&, net::HttpResponse& r) {
                write_json(r, 200, boost::json::object{{"status", "ok"}});
                return Status::ok();
              },
              {"Liveness: the process is up", "platform", 200, "", "Health"}});

  router.add({"GET", "/readyz", Access::kPublic, 0, std::nullopt,
              [&s](RequestContext&, net::HttpResponse& r) {
                if (!s.ready.load()) return Status::unavailable("not ready: starting or shutting down");
                write_json(r, 200, boost::json::object{{"status", "ready"}, {"schema_version", s.store.schema_version()}});
                return Status::ok();
              },
              {"Readiness: the store is open and the server accepts work", "platform", 200, "", "Health"}});

  const Router* self = &router;
  const Timestamp started = s.clock.now();
  router.add({"GET", "/metrics", Access::kPublic, 0, std::nullopt,
              [self, started](RequestContext&, net::HttpResponse& r) {
                std::string extra;
                extra += "# HELP headroom_build_info Headroom's version.\n# TYPE headroom_build_info gauge\n";
                extra += "headroom_build_info{version=\"" HEADROOM_VERSION "\",compiler=\"g++ " __VERSION__ "\"} 1\n";
                extra += "# HELP process_start_time_seconds Start time of the process since the Unix epoch.\n";
                extra += "# TYPE process_start_time_seconds gauge\n";
                extra += "process_start_time_seconds " + std::to_string(started.unix_seconds()) + "\n";
                r.status = 200;
                r.content_type = "text/plain; version=0.0.4; charset=utf-8";
                r.body = self->metrics().render(extra);
                return Status::ok();
              },
              {"Prometheus metrics", "platform", 200, "", "", "text/plain"}});

  router.add({"GET", "/openapi.json", Access::kPublic, 0, std::nullopt,
              [self](RequestContext&, net::HttpResponse& r) {
                // Built on first use: the route table is fixed by then.
                static const std::string document = openapi_document(*self);
                r.status = 200;
                r.body = document;
                return Status::ok();
              },
              {"This OpenAPI 3 document", "platform", 200, "", ""}});
}

}  // namespace headroom::api
