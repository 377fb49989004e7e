// Leases and fenced writes (journal.h, docs/cluster.md), the same scenarios on every backend:
// SQLite in a scratch file and PostgreSQL on a server the test starts.
#include <catch2/catch.hpp>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bridge/journal/journal.h"
#include "tests/fakes/each_backend.h"

using namespace callbridge::bridge;
using callbridge::testing::Backend;
using callbridge::testing::on_each_backend;
using namespace std::chrono_literals;

namespace {

// Asks for `name` as `owner` until it is granted (the holder's lease runs out) or `limit`.
std::optional<std::int64_t> acquire_when_free(Journal& journal, const std::string& name,
                                              const std::string& owner,
                                              std::chrono::milliseconds ttl,
                                              std::chrono::milliseconds limit = 5s) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (auto epoch = journal.acquire_lease(name, owner, ttl)) return epoch;
    std::this_thread::sleep_for(10ms);
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("leases: acquire, renew as the owner, refuse another owner while live",
          "[journal][leases][postgres]") {
  on_each_backend([](Backend& backend) {
    auto journal = backend.open();
    auto first = journal->acquire_lease("call:A", "node-1", 10s);
    REQUIRE(first);
    // The owner takes it again: renewed, same epoch.
    auto again = journal->acquire_lease("call:A", "node-1", 10s);
    REQUIRE(again);
    CHECK(*again == *first);
    // Another owner is refused while it is live.
    CHECK_FALSE(journal->acquire_lease("call:A", "node-2", 10s));
    // Other names are independent.
    auto other = journal->acquire_lease("call:B", "node-2", 10s);
    REQUIRE(other);
    CHECK_FALSE(journal->acquire_lease("call:B", "node-1", 10s));

    // Renewal reports what the owner no longer holds.
    CHECK(journal->renew_leases("node-1", {"call:A"}, 10s).empty());
    CHECK(journal->renew_leases("node-1", {"call:A", "call:B", "call:never"}, 10s) ==
          std::vector<std::string>{"call:B", "call:never"});
    CHECK(journal->renew_leases("node-1", {}, 10s).empty());
  });
}

TEST_CASE("leases: after expiry another owner takes it with a higher epoch",
          "[journal][leases][postgres]") {
  on_each_backend([](Backend& backend) {
    auto journal = backend.open();
    auto first = journal->acquire_lease("call:A", "node-1", 300ms);
    REQUIRE(first);
    CHECK_FALSE(journal->acquire_lease("call:A", "node-2", 10s));
    auto taken = acquire_when_free(*journal, "call:A", "node-2", 10s);
    REQUIRE(taken);
    CHECK(*taken > *first);
    // The old owner no longer holds it: renewal says so, and it cannot take it back.
    CHECK(journal->renew_leases("node-1", {"call:A"}, 10s) == std::vector<std::string>{"call:A"});
    CHECK_FALSE(journal->acquire_lease("call:A", "node-1", 10s));
    CHECK(journal->renew_leases("node-2", {"call:A"}, 10s).empty());
  });
}

TEST_CASE("leases: an expired lease is not renewed, and taking it again bumps the epoch",
          "[journal][leases][postgres]") {
  on_each_backend([](Backend& backend) {
    auto journal = backend.open();
    auto first = journal->acquire_lease("singleton:prune", "node-1", 100ms);
    REQUIRE(first);
    std::this_thread::sleep_for(250ms);
    CHECK(journal->renew_leases("node-1", {"singleton:prune"}, 10s) ==
          std::vector<std::string>{"singleton:prune"});
    auto again = journal->acquire_lease("singleton:prune", "node-1", 10s);
    REQUIRE(again);
    CHECK(*again > *first);
  });
}

TEST_CASE("leases: epochs never repeat after release", "[journal][leases][postgres]") {
  on_each_backend([](Backend& backend) {
    auto journal = backend.open();
    std::set<std::int64_t> seen;
    std::int64_t last = 0;
    for (int i = 0; i < 6; ++i) {
      std::string owner = i % 2 ? "node-2" : "node-1";
      auto epoch = journal->acquire_lease("chain:7", owner, 10s);
      REQUIRE(epoch);
      CHECK(*epoch > last);
      CHECK(seen.insert(*epoch).second);
      last = *epoch;
      // Released: free for anyone at once, and not renewable by the one who let it go.
      journal->release_lease("chain:7", *epoch);
      CHECK(journal->renew_leases(owner, {"chain:7"}, 10s) == std::vector<std::string>{"chain:7"});
    }
    // The same owner taking it after its own release gets a new epoch too.
    auto a = journal->acquire_lease("chain:7", "node-1", 10s);
    REQUIRE(a);
    journal->release_lease("chain:7", *a);
    auto b = journal->acquire_lease("chain:7", "node-1", 10s);
    REQUIRE(b);
    CHECK(*b > *a);
    // Releasing with a stale epoch changes nothing.
    journal->release_lease("chain:7", *a);
    CHECK_FALSE(journal->acquire_lease("chain:7", "node-2", 10s));
    // The lease survives reopening the journal (durable on return).
    journal.reset();
    journal = backend.open();
    CHECK_FALSE(journal->acquire_lease("chain:7", "node-2", 10s));
    auto c = journal->acquire_lease("chain:7", "node-1", 10s);
    REQUIRE(c);
    CHECK(*c == *b);
  });
}

TEST_CASE("leases: a fenced write applies only while its lease holds",
          "[journal][leases][postgres]") {
  on_each_backend([](Backend& backend) {
    auto journal = backend.open();
    std::string error;
    auto old_epoch = journal->acquire_lease("chain:9", "node-1", 300ms);
    REQUIRE(old_epoch);
    Fence old_fence{"chain:9", *old_epoch};
    REQUIRE(journal->kv_put_fenced("chains", "9", "step 1", old_fence, error));
    CHECK(journal->kv_get("chains", "9") == "step 1");

    // Another node takes the lease over after it expired: the old holder's writes are refused.
    auto new_epoch = acquire_when_free(*journal, "chain:9", "node-2", 10s);
    REQUIRE(new_epoch);
    CHECK_FALSE(journal->kv_put_fenced("chains", "9", "stale step", old_fence, error));
    CHECK(error == kLeaseLost);
    CHECK(journal->kv_get("chains", "9") == "step 1");
    error.clear();
    REQUIRE(journal->kv_put_fenced("chains", "9", "step 2", Fence{"chain:9", *new_epoch}, error));
    CHECK(journal->kv_get("chains", "9") == "step 2");

    // A wrong epoch, an unknown lease, a released one: refused. No fence: a plain write.
    CHECK_FALSE(
        journal->kv_put_fenced("chains", "9", "x", Fence{"chain:9", *new_epoch + 1}, error));
    CHECK_FALSE(journal->kv_put_fenced("chains", "9", "x", Fence{"chain:none", 1}, error));
    journal->release_lease("chain:9", *new_epoch);
    CHECK_FALSE(journal->kv_put_fenced("chains", "9", "x", Fence{"chain:9", *new_epoch}, error));
    CHECK(journal->kv_get("chains", "9") == "step 2");
    error.clear();
    CHECK(journal->kv_put_fenced("chains", "9", "unfenced", Fence{}, error));
    CHECK(journal->kv_get("chains", "9") == "unfenced");
  });
}

TEST_CASE("leases: concurrent owners, one winner per lease", "[journal][leases][postgres]") {
  on_each_backend([](Backend& backend) {
    auto journal = backend.open();
    constexpr int kOwners = 4, kNames = 20;
    std::vector<std::vector<std::string>> won(kOwners);
    std::vector<std::thread> threads;
    for (int o = 0; o < kOwners; ++o)
      threads.emplace_back([&, o] {
        for (int n = 0; n < kNames; ++n)
          if (journal->acquire_lease("call:" + std::to_string(n), "node-" + std::to_string(o), 10s))
            won[o].push_back("call:" + std::to_string(n));
      });
    for (auto& t : threads) t.join();
    std::multiset<std::string> all;
    for (const auto& names : won) all.insert(names.begin(), names.end());
    CHECK(all.size() == kNames);
    CHECK(std::set<std::string>(all.begin(), all.end()).size() == kNames);
  });
}

TEST_CASE("leases: pruning a call deletes its expired lease, not a live one",
          "[journal][leases][postgres]") {
  on_each_backend([](Backend& backend) {
    auto journal = backend.open();
    std::string error;
    for (const char* call : {"old-1", "old-2"}) {
      auto stored = journal->append_event(call, "hangup", "{}", error);
      REQUIRE(stored);
      REQUIRE(journal->finish_event(stored->seq, EventState::done, call, "{}", error));
    }
    auto released = journal->acquire_lease("call:old-1", "node-1", 10s);
    REQUIRE(released);
    journal->release_lease("call:old-1", *released);
    auto live = journal->acquire_lease("call:old-2", "node-1", 1h);
    REQUIRE(live);
    auto other = journal->acquire_lease("singleton:prune", "node-1", 10s);
    REQUIRE(other);
    journal->release_lease("singleton:prune", *other);

    CHECK(journal->prune(std::chrono::system_clock::now() + 1min) == 2);
    // old-1's row went: taking it starts from the first epoch again.
    auto fresh = journal->acquire_lease("call:old-1", "node-2", 10s);
    REQUIRE(fresh);
    CHECK(*fresh <= *released);
    // old-2's lease is live (a node may still hold it): kept, with its epoch.
    CHECK_FALSE(journal->acquire_lease("call:old-2", "node-2", 10s));
    CHECK(journal->renew_leases("node-1", {"call:old-2"}, 1h).empty());
    // Leases of other kinds are not the prune's.
    auto prune_lease = journal->acquire_lease("singleton:prune", "node-2", 10s);
    REQUIRE(prune_lease);
    CHECK(*prune_lease > *other);
  });
}
