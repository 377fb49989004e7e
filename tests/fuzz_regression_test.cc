// Crashes the fuzz targets found, replayed through the real binary where the input reaches it.
#include <catch2/catch.hpp>

#include "tests/fakes/subprocess.h"

using namespace callbridge::testing;

namespace {
const std::string kBinary = CALLBRIDGE_BINARY;
const std::string kCorpus = std::string(CALLBRIDGE_SOURCE_DIR) + "/fuzz/corpus";
}  // namespace

TEST_CASE("validate reports missing keys that are read at once, instead of aborting",
          "[cli][fuzz]") {
  // Found by the loader target: a dialer without `type` threw YAML::InvalidNode out of the loader.
  std::string file = kCorpus + "/loader/regress-missing-dialer-type.yaml";
  auto r = run_process({kBinary, "validate", "-c", file});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find(file + ":5:5: error: \"escalation.dialer\" is missing required key \"type\"") !=
        std::string::npos);
  CHECK(r.err.find(file + ":10:7: error: \"escalation.guidances[0]\" is missing required key "
                          "\"message\"") != std::string::npos);
  CHECK(r.err.find("terminate") == std::string::npos);
}

TEST_CASE("validate reports a JSON body number beyond a double, instead of aborting",
          "[cli][fuzz]") {
  // Found by the template target: 1e400 parses as JSON syntax but overflows a double, and the
  // exception escaped the body check.
  std::string file = kCorpus + "/loader/regress-json-number-overflow.yaml";
  auto r = run_process({kBinary, "validate", "-c", file});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find(file + ":8:14: error: \"request.body\": body is not valid JSON (checked with "
                          "placeholder values): [json.exception.out_of_range.406] number "
                          "overflow parsing '1e400'") != std::string::npos);
  CHECK(r.err.find("terminate") == std::string::npos);
}
