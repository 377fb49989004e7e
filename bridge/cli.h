// The `callbridge` command line: serve, validate, simulate, history, replay.
#pragma once

namespace callbridge {

// Exit status: 0 success, 1 runtime failure, 2 bad configuration or usage.
int run_cli(int argc, char** argv);

}  // namespace callbridge
