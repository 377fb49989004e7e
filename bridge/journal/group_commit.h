// Group commit: callers on any thread queue writes; one writer thread commits whatever queued
// while its last transaction ran as one transaction (one fsync), then wakes the callers. Knows
// no database: a backend hands it the function that commits one batch.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace callbridge::bridge {

class GroupCommit {
 public:
  // One write, applied by the writer thread inside the batch's transaction: false with `error`
  // set undoes that write alone.
  using Apply = std::function<bool(std::string& error)>;
  // Applies every write of `batch` in one transaction and commits it. Returns one result per
  // write, in order: empty when the write is durable, else why it is not.
  using CommitBatch = std::function<std::vector<std::string>(const std::vector<Apply*>& batch)>;

  // Starts the writer thread. At most `max_batch` writes per transaction.
  GroupCommit(std::size_t max_batch, CommitBatch commit);
  // Commits what is queued, then stops; later submissions fail ("journal is closing").
  ~GroupCommit();
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  // Queues `apply` and waits until its batch is committed: true when it is durable.
  bool submit(Apply apply, std::string& error);
  // Queues `apply` for the next batch without waiting (written before the destructor returns).
  void submit_later(Apply apply);

  // Queued writes that did not commit (failed or submitted while closing).
  std::uint64_t failed_later() const { return failed_later_.load(); }
  // Writes waiting for the writer thread (not those of the transaction it is committing).
  std::size_t queued() const;

 private:
  struct Write;
  using WritePtr = std::shared_ptr<Write>;

  bool enqueue(WritePtr write);
  void run_writer();
  void run_completer();
  static void wake_callers(const std::vector<WritePtr>& batch);

  const std::size_t max_batch_;
  const CommitBatch commit_;

  // Two stages. Waking a caller costs a system call each, so when callers wait for the next
  // commit the completer wakes a batch's callers while the writer starts that commit;
  // otherwise the writer wakes them itself and saves the hand-off.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<WritePtr> queue_;
  std::size_t queued_callers_ = 0;  // writes in `queue_` whose caller waits
  bool stopping_ = false;

  std::mutex done_mutex_;  // guards the completer's queue
  std::condition_variable completer_wake_;
  std::deque<std::vector<WritePtr>> finished_;
  bool completer_stopping_ = false;

  std::atomic<std::uint64_t> failed_later_{0};

  std::thread writer_;
  std::thread completer_;
};

}  // namespace callbridge::bridge
