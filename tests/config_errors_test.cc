// Configuration errors as data: each tests/config_errors/NAME.yaml is checked by the real
// `callbridge validate`, which must exit 2 and print exactly NAME.err (file names relative to
// that folder). tests/config_errors/README.md says how to add a case or regenerate the .err files.
#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/fakes/subprocess.h"

using namespace callbridge::testing;

namespace {

const std::string kBinary = CALLBRIDGE_BINARY;
const std::filesystem::path kCases =
    std::filesystem::path(CALLBRIDGE_SOURCE_DIR) / "tests" / "config_errors";

}  // namespace

TEST_CASE("every configuration error case prints exactly its .err file", "[config_errors]") {
  std::vector<std::filesystem::path> cases;
  for (const auto& entry : std::filesystem::directory_iterator(kCases))
    if (entry.path().extension() == ".yaml") cases.push_back(entry.path());
  std::sort(cases.begin(), cases.end());
  REQUIRE(cases.size() >= 20);
  const std::string prefix = kCases.string() + "/";
  for (const auto& yaml : cases) {
    std::string name = yaml.stem().string();
    DYNAMIC_SECTION(name) {
      auto expected_path = yaml;
      expected_path.replace_extension(".err");
      INFO(name << ": no " << expected_path.filename().string() << " beside it");
      REQUIRE(std::filesystem::exists(expected_path));
      // A fixed environment: the one variable a case may read is set, no other is.
      auto r = run_process({kBinary, "validate", "-c", yaml.string()},
                           {{"CALLBRIDGE_CASE_TOKEN", "case-token-0123456789"}});
      std::string printed = replace_all(r.err, prefix, "");
      INFO(name << " printed:\n" << printed);
      CHECK(r.exit_code == 2);
      CHECK(r.out.empty());
      CHECK(printed == read_file(expected_path.string()));
    }
  }
}
