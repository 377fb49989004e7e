#include "bridge/connection_gate.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

namespace callbridge::bridge {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kReadChunk = 16384;
// After an error answer, input is read and dropped for a while so that closing does not reset
// the connection before the client has read the answer.
constexpr auto kDrainTime = std::chrono::milliseconds(1000);
constexpr std::size_t kDrainBytes = 1 << 20;
// The gate's own short answers (100 Continue, an early error) are sent within this or dropped.
constexpr auto kShortAnswerTimeout = std::chrono::milliseconds(100);
// The poll loop wakes at least this often to expire deadlines.
constexpr auto kPollInterval = std::chrono::seconds(1);

void set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// Sends all of `data` within `timeout`; false when the peer is gone or too slow.
bool send_all(int fd, std::string_view data, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      continue;
    }
    return false;
  }
  return true;
}

// Sends all of `data` over TLS within `timeout` (the socket is non-blocking).
bool send_all_tls(SSL* ssl, int fd, std::string_view data, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!data.empty()) {
    int n =
        SSL_write(ssl, data.data(), static_cast<int>(std::min<std::size_t>(data.size(), 1 << 20)));
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    int error = SSL_get_error(ssl, n);
    if (error != SSL_ERROR_WANT_WRITE && error != SSL_ERROR_WANT_READ) {
      ERR_clear_error();
      return false;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, static_cast<short>(error == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
  }
  return true;
}

// The connection's bytes go out in plain or over its TLS session.
bool send_to(int fd, SSL* ssl, std::string_view data, std::chrono::milliseconds timeout) {
  return ssl ? send_all_tls(ssl, fd, data, timeout) : send_all(fd, data, timeout);
}

// One whole request, already buffered, read by the HTTP library; answers go to the socket.
class BufferedRequestStream final : public httplib::Stream {
 public:
  BufferedRequestStream(int fd, SSL* ssl, std::string_view request,
                        std::chrono::milliseconds write_timeout)
      : fd_(fd), ssl_(ssl), request_(request), write_timeout_(write_timeout) {}

  bool is_readable() const override { return position_ < request_.size(); }
  bool is_writable() const override {
    pollfd p{fd_, POLLOUT, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & POLLOUT);
  }
  ssize_t read(char* ptr, std::size_t size) override {
    std::size_t n = std::min(size, request_.size() - position_);
    std::memcpy(ptr, request_.data() + position_, n);
    position_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, std::size_t size) override {
    std::string_view data(ptr, size);
    std::string fixed;
    if (!final_status_sent_ && data.rfind("HTTP/1.", 0) == 0 && data.size() > 12) {
      // The library's reason phrases lack codes a PBX uses (486 would read "Internal Server
      // Error"): the status line is written again with the right one.
      int status = std::atoi(std::string(data.substr(9, 3)).c_str());
      std::size_t eol = data.find("\r\n");
      if (status >= 100 && eol != std::string_view::npos) {
        fixed = std::string(data.substr(0, 13)) + std::string(reason_phrase(status)) +
                std::string(data.substr(eol));
        data = fixed;
        if (status >= 200) final_status_sent_ = true;
      }
    }
    // The library writes a response's header block, then its body: held and sent together, one
    // segment instead of two (and one wake-up of the client instead of two).
    if (held_.empty() && data.rfind("HTTP/1.", 0) == 0 && data.size() >= 4 &&
        data.substr(data.size() - 4) == "\r\n\r\n") {
      held_.assign(data);
      return static_cast<ssize_t>(size);
    }
    if (!held_.empty()) {
      held_.append(data);
      bool sent = send_to(fd_, ssl_, held_, write_timeout_);
      held_.clear();
      return sent ? static_cast<ssize_t>(size) : -1;
    }
    if (!send_to(fd_, ssl_, data, write_timeout_)) return -1;
    return static_cast<ssize_t>(size);
  }
  // Sends a header block still held (a response without a body); false when that failed.
  bool flush() {
    if (held_.empty()) return true;
    bool sent = send_to(fd_, ssl_, held_, write_timeout_);
    held_.clear();
    return sent;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    address(::getpeername, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    address(::getsockname, ip, port);
  }
  socket_t socket() const override { return fd_; }

 private:
  template <class F>
  void address(F get, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (get(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return;
    char host[NI_MAXHOST] = {};
    char serv[NI_MAXSERV] = {};
    if (getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
      ip = host;
      port = std::atoi(serv);
    }
  }

  int fd_;
  SSL* ssl_;  // null: plain HTTP
  std::string_view request_;
  std::size_t position_ = 0;
  std::chrono::milliseconds write_timeout_;
  bool final_status_sent_ = false;
  std::string held_;  // a header block waiting for its body
};

}  // namespace

ConnectionGate::ConnectionGate(GateLimits limits, Serve serve, Rejected rejected, SSL_CTX* tls)
    : limits_(limits), serve_(std::move(serve)), rejected_(std::move(rejected)), tls_(tls) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  poller_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "cb-http-poll");
    poll_loop();
  });
  for (int i = 0; i < limits_.threads; ++i)
    workers_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "cb-http");
      worker_loop();
    });
}

ConnectionGate::~ConnectionGate() {
  stop();
}

void ConnectionGate::admit(int fd) {
  set_nonblocking(fd);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  Connection c;
  c.fd = fd;
  if (tls_) {
    // The handshake runs in the poll loop, as the first reads of the connection.
    c.ssl = SSL_new(tls_);
    if (!c.ssl || SSL_set_fd(c.ssl, fd) != 1) {
      ERR_clear_error();
      close_connection(c);
      return;
    }
    SSL_set_accept_state(c.ssl);
    SSL_set_mode(c.ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  }
  c.since = Clock::now();
  // A new connection must begin its request within the read timeout.
  c.deadline = c.since + limits_.read_timeout;
  hand_to_poller(std::move(c));
}

bool ConnectionGate::hand_to_poller(Connection c) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) {
      close_connection(c);
      return false;
    }
    incoming_.push_back(std::move(c));
  }
  wake();
  return true;
}

void ConnectionGate::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake();
  ready_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
  for (auto& w : workers_)
    if (w.joinable()) w.join();
  std::lock_guard lock(mutex_);
  for (auto& c : incoming_) close_connection(c);
  for (auto& c : ready_) close_connection(c);
  incoming_.clear();
  ready_.clear();
  if (wake_fd_ >= 0) ::close(wake_fd_);
  wake_fd_ = -1;
}

void ConnectionGate::wake() {
  std::uint64_t one = 1;
  if (wake_fd_ >= 0) [[maybe_unused]]
    auto n = ::write(wake_fd_, &one, sizeof(one));
}

void ConnectionGate::take_incoming(std::vector<Connection>& waiting) {
  std::vector<Connection> arrived;
  {
    std::lock_guard lock(mutex_);
    arrived.swap(incoming_);
  }
  for (auto& c : arrived) {
    // TLS may hold bytes already decrypted, which poll() cannot see.
    if (c.ssl && SSL_pending(c.ssl) > 0 && !receive(c)) {
      close_connection(c);
      continue;
    }
    // A connection back from a worker may already hold the next (pipelined) request.
    if (!c.buffer.empty() && advance(c)) continue;
    waiting.push_back(std::move(c));
  }
  // Too many waiting: the connection that has waited longest goes, an idle one first.
  while (waiting.size() > limits_.max_waiting) {
    auto oldest = waiting.end();
    for (auto it = waiting.begin(); it != waiting.end(); ++it) {
      if (oldest == waiting.end() || (it->idle && !oldest->idle) ||
          (it->idle == oldest->idle && it->since < oldest->since))
        oldest = it;
    }
    close_connection(*oldest);
    waiting.erase(oldest);
  }
}

ssize_t ConnectionGate::read_some(Connection& c, char* into, std::size_t size) {
  c.want_write = false;
  if (!c.ssl) return ::recv(c.fd, into, size, 0);
  int n = SSL_read(c.ssl, into, static_cast<int>(size));
  if (n > 0) return n;
  switch (SSL_get_error(c.ssl, n)) {
    case SSL_ERROR_WANT_WRITE:
      c.want_write = true;
      [[fallthrough]];
    case SSL_ERROR_WANT_READ:
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify
      return 0;
    default:  // a failed handshake (TLS 1.1, not TLS at all) or a broken session
      ERR_clear_error();
      errno = ECONNRESET;
      return -1;
  }
}

bool ConnectionGate::receive(Connection& c) {
  char chunk[kReadChunk];
  for (;;) {
    ssize_t n = read_some(c, chunk, sizeof(chunk));
    if (n > 0) {
      if (c.draining) {
        c.discarded += static_cast<std::size_t>(n);
        if (c.discarded > kDrainBytes) return false;
        continue;
      }
      if (c.idle) {
        c.idle = false;
        c.deadline = Clock::now() + limits_.read_timeout;
      }
      c.buffer.append(chunk, static_cast<std::size_t>(n));
      // Enough to decide; framing rejects anything larger.
      if (c.buffer.size() > limits_.max_header_bytes + limits_.max_body_bytes + kReadChunk)
        return true;
      // A short read emptied the socket; TLS may still hold decrypted bytes poll() cannot see.
      if (static_cast<std::size_t>(n) < sizeof(chunk) && !(c.ssl && SSL_pending(c.ssl) > 0))
        return true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n == 0 && !c.draining && !c.buffer.empty()) {
      // Sent its request, then shut down its side: the request is still answered.
      c.finished_sending = true;
      return true;
    }
    return false;  // closed by the peer, or an error
  }
}

bool ConnectionGate::advance(Connection& c) {
  Framing f = frame_request(c.buffer, limits_.max_body_bytes, limits_.max_header_bytes);
  if (f.state == Framing::State::incomplete) {
    if (f.expect_continue_at != std::string_view::npos) {
      // The gate says "go on" itself; the header is renamed so that the library, which reads
      // the request only once it is whole, does not say it again.
      send_to(c.fd, c.ssl, "HTTP/1.1 100 Continue\r\n\r\n", kShortAnswerTimeout);
      c.buffer.replace(f.expect_continue_at, 6, "X-Sent");
    }
    return false;
  }
  if (f.state == Framing::State::rejected) {
    reject(c, f.status, f.code, f.message);
    return false;  // stays, draining
  }
  {
    std::lock_guard lock(mutex_);
    ready_.push_back(std::move(c));
  }
  ready_cv_.notify_one();
  return true;
}

void ConnectionGate::reject(Connection& c, int status, std::string_view code,
                            std::string_view message) {
  if (rejected_) rejected_(status);
  nlohmann::ordered_json body;
  body["error"]["code"] = code;
  body["error"]["message"] = message;
  std::string text = body.dump();
  std::string answer =
      "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason_phrase(status)) +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(text.size()) +
      "\r\nConnection: close\r\n\r\n" + text;
  send_to(c.fd, c.ssl, answer, kShortAnswerTimeout);
  if (c.ssl) SSL_shutdown(c.ssl);  // close_notify; the peer's is not waited for
  ::shutdown(c.fd, SHUT_WR);
  c.draining = true;
  c.buffer.clear();
  c.buffer.shrink_to_fit();
  c.deadline = Clock::now() + kDrainTime;
}

void ConnectionGate::close_connection(Connection& c) {
  if (c.ssl) {
    SSL_free(c.ssl);
    ERR_clear_error();
  }
  c.ssl = nullptr;
  if (c.fd >= 0) ::close(c.fd);
  c.fd = -1;
}

void ConnectionGate::poll_loop() {
  std::vector<Connection> waiting;
  std::vector<pollfd> fds;
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) break;
    }
    take_incoming(waiting);
    auto now = Clock::now();
    // Past their deadline: an idle connection is closed; a request begun gets 408.
    for (auto it = waiting.begin(); it != waiting.end();) {
      if (it->deadline > now) {
        ++it;
        continue;
      }
      if (!it->idle && !it->draining) {
        reject(*it, 408, "request_timeout",
               "the request did not arrive within server.read_timeout_ms");
        ++it;
        continue;
      }
      close_connection(*it);
      it = waiting.erase(it);
    }
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    auto next = now + kPollInterval;
    for (const auto& c : waiting) {
      fds.push_back({c.fd, static_cast<short>(c.want_write ? POLLIN | POLLOUT : POLLIN), 0});
      next = std::min(next, c.deadline);
    }
    int timeout = static_cast<int>(std::max<long long>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()).count() + 1));
    int n = ::poll(fds.data(), fds.size(), timeout);
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    if (fds[0].revents & POLLIN) {
      std::uint64_t count;
      [[maybe_unused]] auto r = ::read(wake_fd_, &count, sizeof(count));
    }
    // fds[i + 1] is waiting[i]; walk backwards so that erasing keeps the pairing.
    for (std::size_t i = waiting.size(); i-- > 0;) {
      if (!fds[i + 1].revents) continue;
      Connection& c = waiting[i];
      bool keep = receive(c);
      bool left = false;
      if (keep && !c.draining && !c.buffer.empty()) left = advance(c);
      if (left) {
        waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(i));
      } else if (!keep || c.finished_sending) {
        close_connection(c);
        waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
  }
  for (auto& c : waiting) close_connection(c);
}

void ConnectionGate::worker_loop() {
  for (;;) {
    Connection c;
    {
      std::unique_lock lock(mutex_);
      ready_cv_.wait(lock, [&] { return stopping_ || !ready_.empty(); });
      if (stopping_) return;
      c = std::move(ready_.front());
      ready_.pop_front();
    }
    Framing f = frame_request(c.buffer, limits_.max_body_bytes, limits_.max_header_bytes);
    ++c.served;
    bool last = c.served >= limits_.keep_alive_max_count;
    bool closed = false;
    bool ok = false;
    {
      BufferedRequestStream stream(c.fd, c.ssl, std::string_view(c.buffer).substr(0, f.length),
                                   limits_.write_timeout);
      try {
        ok = serve_(stream, last, closed);
      } catch (...) {
        ok = false;
      }
      if (!stream.flush()) ok = false;
    }
    if (!ok || closed || last || c.finished_sending) {
      close_connection(c);
      continue;
    }
    c.buffer.erase(0, f.length);
    c.idle = c.buffer.empty();
    c.since = Clock::now();
    c.deadline = c.since + (c.idle ? limits_.idle_timeout : limits_.read_timeout);
    if (!hand_to_poller(std::move(c))) return;
  }
}

}  // namespace callbridge::bridge
