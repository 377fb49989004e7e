// Journal::kv_scan by prefix: exactly the keys that start with the prefix, whatever bytes follow
// or end it, in key order (the history reads each event's notes this way).
#include <catch2/catch.hpp>
#include <string>
#include <utility>
#include <vector>

#include "bridge/journal/journal.h"
#include "tests/fakes/subprocess.h"

using namespace callbridge::bridge;
using callbridge::testing::TempDir;

namespace {

std::vector<std::string> keys(const std::vector<std::pair<std::string, std::string>>& rows) {
  std::vector<std::string> out;
  for (const auto& [key, value] : rows) out.push_back(key);
  return out;
}

}  // namespace

TEST_CASE("kv_scan returns exactly the keys that start with the prefix", "[journal][kv]") {
  TempDir dir;
  std::string error;
  auto j = Journal::open({dir.path() + "/j.db", false, 512}, error);
  INFO(error);
  REQUIRE(j);
  const std::string ff = "\xff", ff2 = "\xff\xff";
  for (const std::string& key :
       {std::string("ev-1/commubo"), std::string("ev-1/chain"), std::string("ev-1"),
        std::string("ev-10/commubo"), std::string("ev-1."), std::string("ev-10"),
        std::string("ev-2/commubo"), std::string("a") + ff + "b", std::string("a") + ff2,
        std::string("a") + ff2 + "c", std::string("b"), ff + "x"}) {
    REQUIRE(j->kv_put("event.notes", key, "v:" + key, error));
  }
  REQUIRE(j->kv_put("other", "ev-1/commubo", "elsewhere", error));

  CHECK(keys(j->kv_scan("event.notes", "ev-1/")) ==
        std::vector<std::string>{"ev-1/chain", "ev-1/commubo"});
  CHECK(keys(j->kv_scan("event.notes", "ev-1")) ==
        std::vector<std::string>{"ev-1", "ev-1.", "ev-1/chain", "ev-1/commubo", "ev-10",
                                 "ev-10/commubo"});
  CHECK(keys(j->kv_scan("event.notes", "ev-3/")).empty());
  // A prefix ending in 0xFF bytes: the range ends after the last byte that can grow.
  CHECK(keys(j->kv_scan("event.notes", "a" + ff)) ==
        std::vector<std::string>{"a" + ff + "b", "a" + ff2, "a" + ff2 + "c"});
  CHECK(keys(j->kv_scan("event.notes", "a" + ff2)) ==
        std::vector<std::string>{"a" + ff2, "a" + ff2 + "c"});
  CHECK(keys(j->kv_scan("event.notes", ff)) == std::vector<std::string>{ff + "x"});
  CHECK(j->kv_scan("event.notes").size() == 12);
  auto other = j->kv_scan("other", "ev-1/");
  REQUIRE(other.size() == 1);
  CHECK(other[0].second == "elsewhere");
}
