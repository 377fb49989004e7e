// Where connections wait, holding no worker thread, until they have sent one whole request:
// headers and body, bounded in size (`server.max_body_bytes`, chunked or not) and in time
// (`server.read_timeout_ms`). Only whole requests reach the workers, so slow, idle and
// oversized clients cannot starve intake however many of them there are.
#pragma once

#include <httplib.h>
#include <openssl/ssl.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bridge/request_framing.h"

namespace callbridge::bridge {

struct GateLimits {
  std::size_t max_body_bytes = 65536;
  std::size_t max_header_bytes = 16384;
  std::chrono::milliseconds read_timeout{10000};  // one request, from its first byte
  std::chrono::milliseconds idle_timeout{5000};   // a keep-alive connection between requests
  std::chrono::milliseconds write_timeout{10000};
  std::size_t max_waiting = 1024;  // connections without a whole request yet
  int keep_alive_max_count = 1000;
  int threads = 8;
};

class ConnectionGate {
 public:
  // Serves one whole request read from `stream`; false or `closed` ends the connection.
  using Serve = std::function<bool(httplib::Stream& stream, bool last, bool& closed)>;
  // Told the status of each request the gate itself answers (413, 408, 400, 431).
  using Rejected = std::function<void(int status)>;

  // With `tls`, every connection speaks TLS (the handshake happens while it waits, so a slow
  // handshake holds no worker either); the context outlives the gate.
  ConnectionGate(GateLimits limits, Serve serve, Rejected rejected, SSL_CTX* tls = nullptr);
  ~ConnectionGate();
  ConnectionGate(const ConnectionGate&) = delete;
  ConnectionGate& operator=(const ConnectionGate&) = delete;

  // Takes ownership of an accepted socket.
  void admit(int fd);
  // Closes every connection and joins the threads; idempotent.
  void stop();

 private:
  struct Connection {
    int fd = -1;
    SSL* ssl = nullptr;       // the TLS session, with server.tls
    bool want_write = false;  // TLS needs the socket writable before it can read on
    std::string buffer;
    std::chrono::steady_clock::time_point deadline;
    std::chrono::steady_clock::time_point since;  // when it began to wait
    bool idle = true;                             // no byte of the next request yet
    bool draining = false;                        // answered with an error; discarding input
    bool finished_sending = false;                // the peer shut down its side
    std::size_t discarded = 0;
    int served = 0;
  };

  void poll_loop();
  void worker_loop();
  void wake();
  void take_incoming(std::vector<Connection>& waiting);
  // Queues `c` for the poll thread; false (and closed) when the gate is stopping.
  bool hand_to_poller(Connection c);
  // recv(), or SSL_read() with its errors told as recv()'s (EAGAIN, 0 at the end).
  ssize_t read_some(Connection& c, char* into, std::size_t size);
  // Reads what `c` has sent; false when the connection is finished with.
  bool receive(Connection& c);
  // Frames `c`'s buffer: true when it left `waiting` (ready, rejected or closed).
  bool advance(Connection& c);
  void reject(Connection& c, int status, std::string_view code, std::string_view message);
  void close_connection(Connection& c);

  const GateLimits limits_;
  const Serve serve_;
  const Rejected rejected_;
  SSL_CTX* const tls_;
  int wake_fd_ = -1;
  std::mutex mutex_;
  std::condition_variable ready_cv_;
  std::vector<Connection> incoming_;  // accepted, or back from a worker
  std::deque<Connection> ready_;      // whole requests waiting for a worker
  bool stopping_ = false;
  std::thread poller_;
  std::vector<std::thread> workers_;
};

}  // namespace callbridge::bridge
