// What every journal backend shares around the group commit (group_commit.h): health (whether
// the last commit worked, and a small probe write while it did not), prune as kPruneSteps in one
// transaction, key-value writes, and the commit statistics. A backend supplies its statements.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "bridge/journal/group_commit.h"
#include "bridge/journal/journal.h"

namespace callbridge::bridge {

class BatchedJournal : public Journal {
 public:
  // Durable on return: one write in the next group commit (insert_event, write_action).
  std::optional<StoredEvent> append_event(const std::string& call_id, const std::string& event,
                                          const std::string& body, std::string& error) override;
  bool record_action(const ActionRecord& action, std::string& error) override;
  void record_action_later(ActionRecord action) override;

  std::size_t prune(std::chrono::system_clock::time_point older_than) override;
  // Runs `steps` (a prefix of kPruneSteps, in order) in one transaction: `prune` runs them all.
  // How many calls select_calls chose; 0 when a step failed (nothing is deleted then).
  std::size_t prune_steps(std::chrono::system_clock::time_point older_than,
                          std::span<const PruneStep> steps);

  bool kv_put(std::string_view ns, std::string_view key, std::string_view value,
              std::string& error) override;
  void kv_put_later(std::string_view ns, std::string_view key, std::string_view value) override;
  bool kv_put_if(std::string_view ns, std::string_view key, std::string_view value,
                 std::optional<std::string_view> expected, std::string& error) override;

  bool writable(std::string& reason) override;

  std::uint64_t commits() const override { return commits_.load(); }
  std::uint64_t failed_later_writes() const override { return group_->failed_later(); }
  std::chrono::microseconds last_commit_time() const override {
    return std::chrono::microseconds(last_commit_us_.load());
  }

 protected:
  struct PruneRun {
    std::int64_t cutoff_ms = 0;
    std::size_t calls = 0;  // chosen by select_calls
  };
  // One step of kPruneSteps, on the writer thread inside prune's transaction.
  virtual bool prune_step(PruneStep step, PruneRun& run, std::string& error) = 0;
  // Stores `value` under ns/key (on the writer thread, inside a batch).
  virtual GroupCommit::Apply write_kv(std::string ns, std::string key, std::string value) = 0;
  // Stores `value` under ns/key when its value is `expected` (nullopt: absent); `stored` says
  // whether it did (on the writer thread, inside a batch).
  virtual bool write_kv_if(const std::string& ns, const std::string& key, const std::string& value,
                           const std::optional<std::string>& expected, bool& stored,
                           std::string& error) = 0;
  // Inserts the event, giving it its seq and event ID (on the writer thread, inside a batch).
  virtual bool insert_event(StoredEvent& stored, std::string& error) = 0;
  // Inserts or replaces the attempt (on the writer thread, inside a batch).
  virtual GroupCommit::Apply write_action(ActionRecord action) = 0;

  static std::int64_t now_ms();  // unix epoch milliseconds
  // An event received now, before insert_event numbers it.
  static StoredEvent new_event(const std::string& call_id, const std::string& event,
                               const std::string& body, EventState state);

  // The outcome of the last commit, for writable().
  void note_health(bool ok, std::string reason);

  std::atomic<std::uint64_t> commits_{0};
  std::atomic<std::int64_t> last_commit_us_{0};
  // Set by the backend once its connections are open; its destructor resets it first, so that
  // what is queued is written while the connections are still open.
  std::unique_ptr<GroupCommit> group_;

 private:
  std::mutex health_mutex_;
  bool writable_ = true;  // the last commit worked
  std::string unwritable_reason_;
  std::chrono::steady_clock::time_point last_probe_{};
};

}  // namespace callbridge::bridge
