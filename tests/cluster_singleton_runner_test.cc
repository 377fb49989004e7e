// The singleton runner (rules/singleton.h) over the journal's leases on both
// backends, and over LocalLeases: it takes the lease and runs its job, stops
// when the lease is lost, and hands over to another node when its holder stops.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <thread>

#include "bridge/intake.h"
#include "bridge/journal_leases.h"
#include "rules/singleton.h"
#include "tests/fakes/each_backend.h"
#include "tests/fakes/memory_store.h"

using namespace callbridge;
using namespace std::chrono_literals;

namespace {

constexpr auto kLease = 600ms;

// Polls `done` until it holds or `limit` passes.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 5000ms) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// A node that stalls (a long GC pause, SIGSTOP): while frozen it neither renews
// nor takes leases, but believes its renewals worked.
class StallingLeases final : public rules::Leases {
 public:
  explicit StallingLeases(rules::Leases& inner) : inner_(inner) {}
  void freeze(bool frozen) { frozen_ = frozen; }
  const std::string& owner() const override { return inner_.owner(); }
  std::chrono::milliseconds lease_time() const override { return inner_.lease_time(); }
  std::optional<std::int64_t> acquire(std::string_view name) override {
    if (frozen_) return std::nullopt;
    return inner_.acquire(name);
  }
  std::vector<std::string> renew(const std::vector<std::string>& names) override {
    if (frozen_) return {};
    return inner_.renew(names);
  }
  void release(std::string_view name, std::int64_t epoch) override { inner_.release(name, epoch); }
  bool put_fenced(std::string_view ns, std::string_view key, std::string_view value,
                  const rules::LeaseFence& fence, std::string& error) override {
    return inner_.put_fenced(ns, key, value, fence, error);
  }

 private:
  rules::Leases& inner_;
  std::atomic<bool> frozen_{false};
};

// Two nodes' runners of one singleton; each job run writes "<node> <epoch>"
// fenced.
struct TwoNodes {
  rules::Leases& a_leases;
  rules::Leases& b_leases;
  std::atomic<int> a_runs{0}, b_runs{0};
  std::atomic<int> a_rejected{0};
  rules::SingletonRunner a{a_leases, "singleton:test", 50ms, [this](const rules::LeaseFence& f) {
                             ++a_runs;
                             std::string error;
                             if (!a_leases.put_fenced("test", "last", "a", f, error)) {
                               CHECK(error == "lease lost");
                               ++a_rejected;
                             }
                           }};
  rules::SingletonRunner b{b_leases, "singleton:test", 50ms, [this](const rules::LeaseFence& f) {
                             ++b_runs;
                             std::string error;
                             CHECK(b_leases.put_fenced("test", "last", "b", f, error));
                           }};
};

// The scenario every lease implementation must pass.
void acquire_lose_hand_over(rules::Leases& a_inner, rules::Leases& b_leases,
                            rules::KeyValueStore& kv) {
  StallingLeases a_leases(a_inner);
  TwoNodes nodes{a_leases, b_leases};

  // Acquire: the first runner takes the lease and runs its job at once, then
  // every period.
  nodes.a.start();
  REQUIRE(eventually([&] { return nodes.a.held() && nodes.a_runs >= 3; }));
  nodes.b.start();
  std::this_thread::sleep_for(kLease * 2);
  CHECK(nodes.a.held());
  CHECK_FALSE(nodes.b.held());
  CHECK(nodes.b_runs == 0);  // never both
  CHECK(kv.get("test", "last") == "a");

  // Lose: A stalls past its lease; B takes it over, A's writes are refused from
  // then on and A stops running the job once it sees the loss.
  a_leases.freeze(true);
  REQUIRE(eventually([&] { return nodes.b.held() && nodes.b_runs > 0; }));
  CHECK(nodes.b.fence()->epoch > 0);
  REQUIRE(eventually([&] { return nodes.a_rejected > 0; }));  // A still thinks it holds it
  a_leases.freeze(false);
  REQUIRE(eventually([&] { return !nodes.a.held(); }));
  int a_runs = nodes.a_runs;
  std::this_thread::sleep_for(kLease);
  CHECK(nodes.a_runs == a_runs);
  CHECK(kv.get("test", "last") == "b");

  // Hand over: B stops and lets the lease go; A takes it within its retry
  // period.
  auto b_epoch = nodes.b.fence()->epoch;
  nodes.b.stop();
  REQUIRE(eventually([&] { return nodes.a.held(); }, kLease * 3));
  CHECK(nodes.a.fence()->epoch > b_epoch);
  REQUIRE(eventually([&] { return kv.get("test", "last") == "a"; }));
  nodes.a.stop();
}

}  // namespace

TEST_CASE("local leases: one holder, renewal, release and fencing", "[singleton]") {
  testing::MemoryStore kv;
  rules::LocalLeases a(kv, "node-a", kLease);
  auto b = a.as("node-b");
  auto epoch = a.acquire("x");
  REQUIRE(epoch);
  CHECK_FALSE(b->acquire("x"));
  CHECK(a.acquire("x") == epoch);  // its own: renewed, same epoch
  CHECK(a.renew({"x", "y"}) == std::vector<std::string>{"y"});
  std::string error;
  CHECK(a.put_fenced("ns", "k", "1", {"x", *epoch}, error));
  CHECK_FALSE(b->put_fenced("ns", "k", "2", {"x", *epoch}, error));
  CHECK(error == "lease lost");
  a.release("x", *epoch);
  auto taken = b->acquire("x");
  REQUIRE(taken);
  CHECK(*taken > *epoch);
  CHECK_FALSE(a.put_fenced("ns", "k", "3", {"x", *epoch}, error));
  CHECK(kv.get("ns", "k") == "1");
}

TEST_CASE("singleton runner: acquire, lose, hand over on local leases", "[singleton]") {
  testing::MemoryStore kv;
  rules::LocalLeases a(kv, "node-a", kLease);
  auto b = a.as("node-b");
  acquire_lose_hand_over(a, *b, kv);
}

TEST_CASE("singleton runner: acquire, lose, hand over on each journal backend",
          "[singleton][postgres]") {
  testing::on_each_backend([](testing::Backend& backend) {
    auto journal = backend.open();
    bridge::JournalLeases a(*journal, "node-a", kLease);
    bridge::JournalLeases b(*journal, "node-b", kLease);
    bridge::JournalStore kv(*journal);
    acquire_lose_hand_over(a, b, kv);
  });
}
