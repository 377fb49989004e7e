// What the benchmark drivers share: a CRM stand-in that answers like kintone's record.json and
// records when each call's request arrived (the record's first "value" names the call), and the
// percentile of a sample.
#pragma once

#include <arpa/inet.h>
#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace bench {

inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t i =
      std::min(v.size() - 1, static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size())));
  return v[i];
}

// cpp-httplib (0.11, built into Debian's library) listens with a backlog of 5: connections
// opened together beyond it wait for a SYN-ACK retransmission (1 s) or fail after the request was
// written. A CRM's server has a deeper one; so does the stand-in: listen() again on its socket.
inline void deepen_backlog(int port) {
  DIR* fds = opendir("/proc/self/fd");
  if (fds == nullptr) return;
  while (dirent* entry = readdir(fds)) {
    int fd = std::atoi(entry->d_name);
    sockaddr_in address{};
    socklen_t length = sizeof address;
    int listening = 0;
    socklen_t flag_length = sizeof listening;
    if (fd <= 2 || getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
        address.sin_family != AF_INET || ntohs(address.sin_port) != port ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &flag_length) != 0 || !listening)
      continue;
    ::listen(fd, 4096);
  }
  closedir(fds);
}

struct RecordSink {
  using Clock = std::chrono::steady_clock;
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::mutex mutex;
  std::unordered_map<std::string, Clock::time_point> arrived;
  std::atomic<long> count{0};

  RecordSink() {
    // A thread per connection (cpp-httplib keeps a kept-alive connection on its thread): more
    // than any client here opens at once, so that the stand-in never queues a connection.
    server.new_task_queue = [] { return new httplib::ThreadPool(256); };
    server.set_tcp_nodelay(true);
    server.set_keep_alive_max_count(1000000);
    server.Post("/k/v1/record.json", [this](const httplib::Request& req, httplib::Response& res) {
      auto now = Clock::now();
      auto at = req.body.find("\"value\":\"");
      std::string id = at == std::string::npos
                           ? ""
                           : req.body.substr(at + 9, req.body.find('"', at + 9) - at - 9);
      {
        std::lock_guard lock(mutex);
        arrived.emplace(std::move(id), now);
      }
      ++count;
      res.set_content(R"({"id":"1","revision":"1"})", "application/json");
    });
    port = server.bind_to_any_port("127.0.0.1");
    deepen_backlog(port);
    thread = std::thread([this] { server.listen_after_bind(); });
    while (!server.is_running()) std::this_thread::yield();
  }
  ~RecordSink() {
    server.stop();
    thread.join();
  }
  void reset() {
    std::lock_guard lock(mutex);
    arrived.clear();
    count = 0;
  }
};

}  // namespace bench
