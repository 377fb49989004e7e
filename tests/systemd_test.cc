// The bridge under systemd, without systemd: READY=1 on a NOTIFY_SOCKET the test owns, sent only
// once the listener accepts connections; journald priorities when JOURNAL_STREAM names stderr.
#include <httplib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>

#include "tests/fakes/bridge_harness.h"

using namespace callbridge::testing;

namespace {

// A datagram socket like systemd's notification socket, bound at `path` (abstract when it
// starts with '@').
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.data(), path.size());
    if (path[0] == '@') address.sun_path[0] = '\0';
    socklen_t size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                            (path[0] == '@' ? 0 : 1));
    bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&address), size) == 0;
    timeval timeout{20, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~NotifySocket() { ::close(fd_); }
  bool bound() const { return bound_; }
  // The next datagram, or "" after the timeout.
  std::string receive() {
    char buffer[4096];
    ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "";
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
};

int port_of(const std::string& state) {
  auto at = state.find("STATUS=listening on port ");
  return at == std::string::npos ? 0 : std::stoi(state.substr(at + 25));
}

}  // namespace

TEST_CASE("serve sends READY=1 once the listener accepts connections", "[systemd]") {
  for (bool abstract : {false, true}) {
    Bridge bridge;
    bridge.write_config("rules: []\n");
    std::string path =
        abstract ? "@callbridge-test-" + std::to_string(::getpid()) : bridge.dir.path() + "/notify";
    NotifySocket socket(path);
    REQUIRE(socket.bound());
    REQUIRE(bridge.start({{"NOTIFY_SOCKET", path}}));
    std::string state = socket.receive();
    INFO("abstract: " << abstract << ", state: " << state);
    REQUIRE(state.rfind("READY=1\n", 0) == 0);
    int port = port_of(state);
    CHECK(port == bridge.port());
    httplib::Client client("127.0.0.1", port);
    auto r = client.Get("/healthz");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(bridge.process->stop(SIGTERM) == 0);
    CHECK(socket.receive() == "STOPPING=1");
  }
}

TEST_CASE("no NOTIFY_SOCKET: serve runs as before", "[systemd]") {
  Bridge bridge;
  bridge.write_config("rules: []\n");
  REQUIRE(bridge.start());
  CHECK(bridge.process->stop(SIGTERM) == 0);
}

TEST_CASE("logs carry journald priorities when stderr is the journal stream", "[systemd]") {
  TempDir dir;
  // Nothing can listen on a TEST-NET address: the bridge logs an error and exits.
  std::string config = dir.write("callbridge.yaml",
                                 "server:\n  listen: 192.0.2.1:9\nstorage:\n"
                                 "  path: " +
                                     dir.path() + "/journal.db\n");
  auto run_with_stream = [&](bool journal) {
    std::string log = dir.write(journal ? "journal.log" : "plain.log", "");
    struct stat st {};
    REQUIRE(::stat(log.c_str(), &st) == 0);
    std::string stream = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    auto r = run_process(
        {"/bin/sh", "-c", "exec \"$0\" serve -c \"$1\" 2>>\"$2\"", CALLBRIDGE_BINARY, config, log},
        {{"JOURNAL_STREAM", journal ? stream : "1:1"}});
    CHECK(r.exit_code == 1);
    return read_file(log);
  };
  std::string journal = run_with_stream(true);
  INFO(journal);
  CHECK(journal.rfind("<3>cannot start error=\"", 0) == 0);
  CHECK(journal.find("\"\n", journal.find("<3>cannot start")) != std::string::npos);
  CHECK(journal.find("\"level\"") == std::string::npos);
  std::string plain = run_with_stream(false);
  INFO(plain);
  CHECK(plain.find("{\"ts\":") == 0);
  CHECK(plain.find("\"level\":\"error\",\"msg\":\"cannot start\"") != std::string::npos);
}
