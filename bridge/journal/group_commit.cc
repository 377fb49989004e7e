#include "bridge/journal/group_commit.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace callbridge::bridge {

namespace {

static_assert(std::atomic<int>::is_always_lock_free && sizeof(std::atomic<int>) == sizeof(int),
              "a write's done word is a futex");

// A write's caller sleeps on its `done` word itself (std::atomic::wait would spin and yield
// first, which costs more than it saves here: a commit takes milliseconds).
void wait_while_zero(std::atomic<int>& word) {
  while (word.load(std::memory_order_acquire) == 0)
    syscall(SYS_futex, reinterpret_cast<int*>(&word), FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
}

void wake_one(std::atomic<int>& word) {
  syscall(SYS_futex, reinterpret_cast<int*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

}  // namespace

struct GroupCommit::Write {
  Apply apply;
  bool detached = false;  // nobody waits for it
  std::string result;     // empty: committed; written before `done` is set
  // Set once the batch committed. Its caller waits on the atomic itself (a futex): no mutex to
  // take again on waking, which a batch's callers woken together would queue on.
  std::atomic<int> done{0};
};

GroupCommit::GroupCommit(std::size_t max_batch, CommitBatch commit)
    : max_batch_(max_batch < 1 ? 1 : max_batch), commit_(std::move(commit)) {
  writer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "cb-journal");
    run_writer();
  });
  completer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "cb-journal-wake");
    run_completer();
  });
}

GroupCommit::~GroupCommit() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard lock(done_mutex_);
    completer_stopping_ = true;
  }
  completer_wake_.notify_all();
  if (completer_.joinable()) completer_.join();
}

void GroupCommit::run_writer() {
  std::vector<WritePtr> batch;
  std::vector<Apply*> applies;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued is written
      while (!queue_.empty() && batch.size() < max_batch_) {
        if (!queue_.front()->detached) --queued_callers_;
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    applies.clear();
    for (const auto& w : batch) applies.push_back(&w->apply);
    std::vector<std::string> results = commit_(applies);
    results.resize(batch.size());
    std::size_t callers = 0;
    for (const auto& w : batch) callers += w->detached ? 0 : 1;
    // Waking the completer costs as much as waking one caller: hand off only a batch of
    // several callers, and only when callers wait for the next commit.
    bool hand_off = false;
    if (callers > 1) {
      std::lock_guard lock(mutex_);
      hand_off = queued_callers_ > 0;
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      batch[i]->result = std::move(results[i]);
      if (batch[i]->detached && !batch[i]->result.empty()) failed_later_++;
      batch[i]->done.store(1, std::memory_order_release);
    }
    if (hand_off) {
      {
        std::lock_guard lock(done_mutex_);
        finished_.push_back(std::move(batch));
      }
      completer_wake_.notify_one();
    } else {
      wake_callers(batch);
    }
    batch.clear();
  }
}

void GroupCommit::wake_callers(const std::vector<WritePtr>& batch) {
  for (const auto& w : batch)
    if (!w->detached) wake_one(w->done);
}

void GroupCommit::run_completer() {
  std::unique_lock lock(done_mutex_);
  while (true) {
    completer_wake_.wait(lock, [&] { return completer_stopping_ || !finished_.empty(); });
    if (finished_.empty()) return;
    std::vector<WritePtr> batch = std::move(finished_.front());
    finished_.pop_front();
    lock.unlock();
    wake_callers(batch);
    batch.clear();
    lock.lock();
  }
}

std::size_t GroupCommit::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

bool GroupCommit::enqueue(WritePtr write) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    if (!write->detached) ++queued_callers_;
    queue_.push_back(std::move(write));
  }
  wake_.notify_one();
  return true;
}

bool GroupCommit::submit(Apply apply, std::string& error) {
  auto write = std::make_shared<Write>();
  write->apply = std::move(apply);
  if (!enqueue(write)) {
    error = "journal is closing";
    return false;
  }
  wait_while_zero(write->done);
  error = std::move(write->result);
  return error.empty();
}

void GroupCommit::submit_later(Apply apply) {
  auto write = std::make_shared<Write>();
  write->apply = std::move(apply);
  write->detached = true;
  if (!enqueue(std::move(write))) failed_later_++;
}

}  // namespace callbridge::bridge
