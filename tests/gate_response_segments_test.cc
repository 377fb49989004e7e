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

const std::string kRequest = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";

// What a client of a gate whose every answer is `writes` (written one by one, as the library
// writes a response) receives for each of `requests` requests on one kept-alive connection: the
// packets of each answer. One end of a packet socket pair is the connection the gate admits.
std::vector<std::vector<std::string>> answers(std::vector<std::string> writes, int requests) {
  GateLimits limits;
  limits.threads = 1;
  ConnectionGate gate(
      limits,
      [writes](httplib::Stream& stream, bool, bool&) {
        for (const auto& w : writes) stream.write(w.data(), w.size());
        return true;
      },
      [](int) {});
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds) == 0);
  gate.admit(fds[0]);
  std::vector<std::vector<std::string>> out;
  for (int i = 0; i < requests; ++i) {
    REQUIRE(::send(fds[1], kRequest.data(), kRequest.size(), 0) ==
            static_cast<ssize_t>(kRequest.size()));
    out.push_back(packets(fds[1], std::chrono::milliseconds(300)));
  }
  ::close(fds[1]);
  gate.stop();
  return out;
}

}  // namespace

TEST_CASE("the gate sends a response's header block and body in one write", "[gate]") {
  auto got = answers({"HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\n", "done"}, 3);
  for (const auto& answer : got) {  // each answer of a kept-alive connection
    REQUIRE(answer.size() == 1);
    CHECK(answer[0] == "HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\ndone");
  }
}

TEST_CASE("a response without a body still leaves the gate, once its request is served", "[gate]") {
  auto got = answers({"HTTP/1.1 204 No Content\r\n\r\n"}, 1);
  REQUIRE(got[0].size() == 1);
  CHECK(got[0][0] == "HTTP/1.1 204 No Content\r\n\r\n");
}

TEST_CASE("writes after the first body part go out as they come", "[gate]") {
  auto got = answers({"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", "abc", "def"}, 1);
  REQUIRE(got[0].size() == 2);
  CHECK(got[0][0] == "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc");
  CHECK(got[0][1] == "def");
}
