// The `callbridge` command line: serve, validate, simulate, history, replay, and the
// connectors' subcommands.
#pragma once

namespace callbridge {

namespace rules {
class Registry;
}

// Exit status: 0 success, 1 runtime failure, 2 bad configuration or usage. `registry`: the
// connectors whose sections, actions, services, subcommands and history views the CLI offers.
int run_cli(int argc, char** argv, const rules::Registry& registry);

}  // namespace callbridge
