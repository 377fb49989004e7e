// Work that runs on one node of the cluster at a time: the node holding lease `name` runs the
// job every `period`; it renews the lease every lease_time/3 and stops running the job when the
// lease is lost; a node without it tries to take it every lease_time. When the holder stops it
// lets the lease go, so another node takes over within lease_time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "rules/host.h"

namespace callbridge::rules {

class SingletonRunner {
 public:
  // Runs on the runner's job thread while the lease is held, with the fence to write under.
  // Called at once when the lease is taken, then every `period` and on wake().
  using Job = std::function<void(const LeaseFence& fence)>;

  SingletonRunner(Leases& leases, std::string name, std::chrono::milliseconds period, Job job);
  ~SingletonRunner();
  SingletonRunner(const SingletonRunner&) = delete;
  SingletonRunner& operator=(const SingletonRunner&) = delete;

  void start();
  // Waits for a running job to return, then releases the lease if held.
  void stop();
  // Runs the job now (if this node holds the lease).
  void wake();

  bool held() const;
  // The fence while held.
  std::optional<LeaseFence> fence() const;
  // How many times the job ran on this node, and how often the lease was taken.
  std::uint64_t runs() const;
  std::uint64_t acquisitions() const;
  const std::string& name() const { return name_; }

 private:
  void lease_loop();
  void job_loop();

  Leases& leases_;
  std::string name_;
  std::chrono::milliseconds period_;
  Job job_;

  mutable std::mutex mutex_;
  std::condition_variable lease_cv_, job_cv_;
  bool stopping_ = false;
  bool woken_ = false;
  std::optional<std::int64_t> epoch_;  // held
  std::uint64_t generation_ = 0;       // bumped on every acquisition
  std::uint64_t runs_ = 0, acquisitions_ = 0;
  std::thread lease_thread_, job_thread_;
};

}  // namespace callbridge::rules
