// Journal::kv_put_if on both backends: insert-if-absent and compare-and-replace decided in the
// database, so that of two journals on one database racing for a key exactly one stores it.
#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/fakes/each_backend.h"

using namespace callbridge::bridge;
using callbridge::testing::Backend;
using callbridge::testing::on_each_backend;

TEST_CASE("kv_put_if stores only over the expected value", "[journal][kv][postgres]") {
  on_each_backend([](Backend& backend) {
    auto j = backend.open();
    std::string error;
    CHECK(j->kv_put_if_absent("d", "k", "first", error));
    CHECK(error.empty());
    CHECK_FALSE(j->kv_put_if_absent("d", "k", "second", error));
    CHECK(error.empty());  // not stored because the key is there, not because of a failure
    CHECK(j->kv_get("d", "k") == "first");

    CHECK_FALSE(j->kv_put_if("d", "k", "third", std::string_view("second"), error));
    CHECK(error.empty());
    CHECK(j->kv_put_if("d", "k", "third", std::string_view("first"), error));
    CHECK(j->kv_get("d", "k") == "third");
    CHECK_FALSE(j->kv_put_if("d", "absent", "x", std::string_view("third"), error));
    CHECK_FALSE(j->kv_get("d", "absent"));

    // Durable on return: another journal on the same storage reads it.
    j.reset();
    auto again = backend.open();
    CHECK(again->kv_get("d", "k") == "third");
  });
}

TEST_CASE("kv_put_if_absent: two journals on one database, exactly one stores each key",
          "[journal][kv][postgres]") {
  on_each_backend([](Backend& backend) {
    auto a = backend.open();
    auto b = backend.open();
    constexpr int kKeys = 200, kThreadsPerJournal = 4;
    std::vector<std::atomic<int>> winners(kKeys);
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 2 * kThreadsPerJournal; ++t)
      threads.emplace_back([&, t] {
        Journal& j = t % 2 == 0 ? *a : *b;
        for (int k = 0; k < kKeys; ++k) {
          std::string error;
          if (j.kv_put_if_absent("d", "key-" + std::to_string(k), "t" + std::to_string(t), error))
            ++winners[k];
          else if (!error.empty())
            ++failures;
        }
      });
    for (auto& t : threads) t.join();
    CHECK(failures == 0);
    int exactly_one = 0;
    for (auto& w : winners) exactly_one += w == 1 ? 1 : 0;
    CHECK(exactly_one == kKeys);
  });
}
