// The escalation engine's only source of time and threads: one timer queue feeding a few
// workers, so thousands of chains waiting between calls cost a heap entry each, not a thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

#include "connectors/escalation/model.h"

namespace callbridge::escalation {

class TimerQueue {
 public:
  virtual ~TimerQueue() = default;
  virtual Millis now() const = 0;
  // Runs `task` once at or after `at` (never on the caller's stack).
  virtual void schedule(Millis at, std::function<void()> task) = 0;
  void post(std::function<void()> task) { schedule(now(), std::move(task)); }

 protected:
  // A scheduled task; earliest first, then in scheduling order.
  struct Entry {
    Millis at;
    std::uint64_t seq;
    std::function<void()> task;
    bool operator>(const Entry& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  using Heap = std::priority_queue<Entry, std::vector<Entry>, std::greater<>>;
};

// Real time: one timer thread and `workers` worker threads. Tasks pending at stop() are dropped.
class ThreadTimerQueue final : public TimerQueue {
 public:
  explicit ThreadTimerQueue(int workers = 4);
  ~ThreadTimerQueue() override;
  Millis now() const override;
  void schedule(Millis at, std::function<void()> task) override;
  void stop();  // joins every thread; idempotent

 private:
  void timer_loop();
  void worker_loop();

  std::mutex mutex_;
  std::condition_variable timer_cv_, worker_cv_;
  Heap timers_;
  std::queue<std::function<void()>> ready_;
  std::uint64_t seq_ = 0;
  bool stopping_ = false;
  std::thread timer_;
  std::vector<std::thread> workers_;
};

// Test and dry-run time: nothing runs until run_until()/advance() runs it, on the caller's
// thread, in time order. Tasks scheduled from other threads are picked up by the next call.
class ManualTimerQueue final : public TimerQueue {
 public:
  explicit ManualTimerQueue(Millis start = 1'700'000'000'000) : now_(start) {}
  Millis now() const override;
  void schedule(Millis at, std::function<void()> task) override;
  // Runs every task due up to now()+by, moving the clock to each task's time; returns how many.
  std::size_t advance(std::chrono::milliseconds by);
  std::size_t run_ready() { return advance(std::chrono::milliseconds(0)); }
  // Runs tasks, jumping the clock ahead, until `done` or nothing is scheduled; returns done().
  bool run_until(const std::function<bool()>& done, std::size_t max_tasks = 10'000'000);
  std::size_t pending() const;
  void clear();  // drops every pending task (a process that died)

 private:
  bool run_one(Millis limit);

  mutable std::mutex mutex_;
  Millis now_;
  std::uint64_t seq_ = 0;
  Heap timers_;
};

}  // namespace callbridge::escalation
