// `callbridge completion bash` driven through bash itself, and the build's identity in
// --version and /metrics.
#include <catch2/catch.hpp>
#include <fstream>
#include <regex>

#include "tests/fakes/bridge_harness.h"

using namespace callbridge::testing;

namespace {

// What bash completes for `words` (the last one is being typed), one candidate per line.
std::string complete(const TempDir& dir, const std::string& words, const std::string& cwd = ".") {
  auto script = run_process({CALLBRIDGE_BINARY, "completion", "bash"});
  REQUIRE(script.exit_code == 0);
  std::string file = dir.write("completion.bash", script.out);
  auto r = run_process({"/bin/bash", "-c",
                        "source \"$0\"; cd \"$2\"; COMP_WORDS=($1); [ \"${1: -1}\" = ' ' ] && "
                        "COMP_WORDS+=(''); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _callbridge; "
                        "printf '%s\\n' \"${COMPREPLY[@]}\"",
                        file, words, cwd});
  REQUIRE(r.exit_code == 0);
  return r.out;
}

// CMake's project(VERSION), the one place the version is written.
std::string project_version() {
  return CALLBRIDGE_VERSION;
}

}  // namespace

TEST_CASE("bash completion: commands, options, choices and files", "[completion][cli]") {
  TempDir dir;
  CHECK(complete(dir, "callbridge ") ==
        "validate\nsimulate\nserve\nhistory\ndirectory-sync\nreplay\n"
        "hash-password\njournal\nmigrate\nschema\n-h\n--help\n--version\n");
  CHECK(complete(dir, "callbridge sim") == "simulate\n");
  CHECK(complete(dir, "callbridge simulate --fo") == "--format\n");
  CHECK(complete(dir, "callbridge simulate --format p") == "powershell\n");
  CHECK(complete(dir, "callbridge replay --l") == "--list\n");
  CHECK(complete(dir, "callbridge history --call ") == "\n");  // a call ID, not a file
  dir.write("rules.yaml", "");
  CHECK(complete(dir, "callbridge validate -c ru", dir.path()) == "rules.yaml\n");
  CHECK(complete(dir, "callbridge serve --config ru", dir.path()) == "rules.yaml\n");
  // The hidden command stays hidden.
  CHECK(complete(dir, "callbridge comp") == "\n");
}

TEST_CASE("callbridge --version: version, commit and build type", "[cli]") {
  auto r = run_process({CALLBRIDGE_BINARY, "--version"});
  CHECK(r.exit_code == 0);
  std::smatch m;
  REQUIRE(std::regex_match(r.out, m,
                           std::regex(R"(callbridge ([0-9.]+) \(commit ([0-9a-f]{7,}|unknown), )"
                                      R"((\w+)\)\n)")));
  CHECK(m[1] == project_version());
}

TEST_CASE("/metrics exposes callbridge_build_info", "[cli][server]") {
  Bridge bridge;
  bridge.write_config("rules: []\n");
  REQUIRE(bridge.start());
  auto metrics = bridge.client().Get("/metrics");
  REQUIRE(metrics);
  auto version = run_process({CALLBRIDGE_BINARY, "--version"}).out;
  std::smatch m;
  REQUIRE(std::regex_search(version, m, std::regex(R"(commit ([0-9a-z]+),)")));
  CHECK(metrics->body.find("callbridge_build_info{version=\"" + project_version() + "\",commit=\"" +
                           std::string(m[1]) + "\"} 1\n") != std::string::npos);
}
