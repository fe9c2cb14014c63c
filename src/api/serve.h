// `headroom serve` and `headroom keygen`: the server's commands.
#pragma once

namespace CLI {
class App;
}

namespace headroom::api {

// Adds `serve` (run the platform) and `keygen` (print a new key, offline, for
// HEADROOM_ADMIN_KEY) to `app`; their callbacks set `exit_code`.
void add_serve_command(CLI::App& app, int& exit_code);

}  // namespace headroom::api
