// A response leaves the gate in one write: its header block is held until its body, so a client
// gets one segment (and one wake-up) per answer instead of two. A socket pair of sequenced
// packets keeps each send() apart, which makes the count of writes visible to the test.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "bridge/connection_gate.h"

using callbridge::bridge::ConnectionGate;
using callbridge::bridge::GateLimits;

namespace {

// Every packet the peer sends within `wait`, each as it arrived.
std::vector<std::string> packets(int fd, std::chrono::milliseconds wait) {
  std::vector<std::string> out;
  pollfd p{fd, POLLIN, 0};
  while (::poll(&p, 1, static_cast<int>(wait.count())) > 0) {
    char buf[8192];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.emplace_back(buf, static_cast<std::size_t>(n));
  }
  return out;
}

// A gate whose every request is answered by `answer`, admitting one end of a packet socket pair;
// returns the other end.
int connect_to(ConnectionGate& gate) {
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds) == 0);
  gate.admit(fds[0]);
  return fds[1];
}

const std::string kRequest = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";

}  // namespace

TEST_CASE("the gate sends a response's header block and body in one write", "[gate]") {
  GateLimits limits;
  limits.threads = 1;
  ConnectionGate gate(
      limits,
      [](httplib::Stream& stream, bool, bool&) {
        std::string head = "HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\n";
        stream.write(head.data(), head.size());
        stream.write("done", 4);
        return true;
      },
      [](int) {});
  int client = connect_to(gate);
  for (int i = 0; i < 3; ++i) {  // each answer of a kept-alive connection
    REQUIRE(::send(client, kRequest.data(), kRequest.size(), 0) ==
            static_cast<ssize_t>(kRequest.size()));
    auto got = packets(client, std::chrono::milliseconds(300));
    REQUIRE(got.size() == 1);
    CHECK(got[0] == "HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\ndone");
  }
  ::close(client);
  gate.stop();
}

TEST_CASE("a response without a body still leaves the gate, once its request is served", "[gate]") {
  GateLimits limits;
  limits.threads = 1;
  ConnectionGate gate(
      limits,
      [](httplib::Stream& stream, bool, bool&) {
        std::string head = "HTTP/1.1 204 No Content\r\n\r\n";
        stream.write(head.data(), head.size());
        return true;
      },
      [](int) {});
  int client = connect_to(gate);
  REQUIRE(::send(client, kRequest.data(), kRequest.size(), 0) ==
          static_cast<ssize_t>(kRequest.size()));
  auto got = packets(client, std::chrono::milliseconds(300));
  REQUIRE(got.size() == 1);
  CHECK(got[0] == "HTTP/1.1 204 No Content\r\n\r\n");
  ::close(client);
  gate.stop();
}

TEST_CASE("writes after the first body part go out as they come", "[gate]") {
  GateLimits limits;
  limits.threads = 1;
  ConnectionGate gate(
      limits,
      [](httplib::Stream& stream, bool, bool&) {
        std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n";
        stream.write(head.data(), head.size());
        stream.write("abc", 3);
        stream.write("def", 3);
        return true;
      },
      [](int) {});
  int client = connect_to(gate);
  REQUIRE(::send(client, kRequest.data(), kRequest.size(), 0) ==
          static_cast<ssize_t>(kRequest.size()));
  auto got = packets(client, std::chrono::milliseconds(300));
  REQUIRE(got.size() == 2);
  CHECK(got[0] == "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc");
  CHECK(got[1] == "def");
  ::close(client);
  gate.stop();
}
