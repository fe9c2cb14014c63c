// The `headroom` binary: wiring only. `serve` runs the platform; every other
// command is a client of its API.
#include <CLI/CLI.hpp>

#include "api/serve.h"
#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"Headroom: sell a GPU fleet's spare capacity as raw compute and hosted models", "headroom"};
  app.set_version_flag("--version", HEADROOM_VERSION);
  app.require_subcommand(1);
  int exit_code = 0;
  headroom::api::add_serve_command(app, exit_code);
  headroom::cli::add_client_commands(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  return exit_code;
}
