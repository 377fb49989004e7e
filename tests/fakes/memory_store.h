// The key-value store of the rules' host, in memory: for tests, benchmarks and fuzz targets of
// connectors that keep state (dedupe keys, directory cursors, commubo notes, escalation chains)
// without a journal. Can be told to fail its writes.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rules/host.h"

namespace callbridge::testing {

class MemoryStore final : public rules::KeyValueStore {
 public:
  bool put(std::string_view ns, std::string_view key, std::string_view value,
           std::string& error) override {
    std::lock_guard lock(mutex_);
    if (fail_) return unavailable(error);
    ++writes_;
    data_[{std::string(ns), std::string(key)}] = std::string(value);
    return true;
  }
  bool put_if(std::string_view ns, std::string_view key, std::string_view value,
              std::optional<std::string_view> expected, std::string& error) override {
    std::lock_guard lock(mutex_);
    if (fail_) return unavailable(error);
    error.clear();
    auto it = data_.find({std::string(ns), std::string(key)});
    if (expected ? it == data_.end() || it->second != *expected : it != data_.end()) return false;
    ++writes_;
    data_[{std::string(ns), std::string(key)}] = std::string(value);
    return true;
  }
  bool erase(std::string_view ns, std::string_view key, std::string& error) override {
    std::lock_guard lock(mutex_);
    if (fail_) return unavailable(error);
    data_.erase({std::string(ns), std::string(key)});
    return true;
  }
  std::optional<std::string> get(std::string_view ns, std::string_view key) override {
    std::lock_guard lock(mutex_);
    auto it = data_.find({std::string(ns), std::string(key)});
    if (it == data_.end()) return std::nullopt;
    return it->second;
  }
  std::vector<std::pair<std::string, std::string>> scan(std::string_view ns) override {
    std::lock_guard lock(mutex_);
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [k, v] : data_)
      if (k.first == ns) out.emplace_back(k.second, v);
    return out;
  }
  // Every entry as `NAMESPACE\nKEY=VALUE` lines, in key order.
  std::string dump() const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& [k, v] : data_) out += k.first + "\n" + k.second + "=" + v + "\n";
    return out;
  }
  void clear() {
    std::lock_guard lock(mutex_);
    data_.clear();
  }
  // While `fail` holds, put and erase fail with "store unavailable".
  void fail_writes(bool fail) {
    std::lock_guard lock(mutex_);
    fail_ = fail;
  }
  std::size_t writes() const {  // successful puts
    std::lock_guard lock(mutex_);
    return writes_;
  }

 private:
  static bool unavailable(std::string& error) {
    error = "store unavailable";
    return false;
  }

  mutable std::mutex mutex_;
  bool fail_ = false;
  std::size_t writes_ = 0;
  std::map<std::pair<std::string, std::string>, std::string> data_;
};

}  // namespace callbridge::testing
