// server.tls through the real binary: HTTPS on the listener, TLS 1.1 refused, and a renewed
// certificate served to new connections after SIGHUP. Certificates are made here, in memory.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <vector>

#include "tests/fakes/bridge_harness.h"
#include "tests/fakes/certificate.h"

using namespace callbridge::testing;

namespace {

struct Handshake {
  bool ok = false;
  std::string common_name;  // of the certificate the server presented
};

// One TLS handshake with 127.0.0.1:`port`, offering exactly `version`.
Handshake handshake(int port, int version) {
  Handshake out;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_security_level(ctx, 0);  // let the client offer TLS 1.1: the server must refuse
  SSL_CTX_set_min_proto_version(ctx, version);
  SSL_CTX_set_max_proto_version(ctx, version);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  out.ok = SSL_connect(ssl) == 1;
  if (out.ok) {
    if (X509* peer = SSL_get1_peer_certificate(ssl)) {
      char cn[256] = {};
      X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
      out.common_name = cn;
      X509_free(peer);
    }
    SSL_shutdown(ssl);
  }
  SSL_free(ssl);
  close(fd);
  SSL_CTX_free(ctx);
  return out;
}

}  // namespace

TEST_CASE("server.tls: HTTPS, TLS 1.2 or later only, certificates renewed on SIGHUP",
          "[e2e][tls]") {
  Bridge bridge;
  Pem first = self_signed("bridge-one.test");
  std::string cert = bridge.dir.write("cert.pem", first.cert);
  std::string key = bridge.dir.write("key.pem", first.key);
  bridge.config_path = bridge.dir.write(
      "callbridge.yaml", "server:\n  listen: 127.0.0.1:0\n  tokens: [\"" + kBridgeToken +
                             "\"]\n  drain_seconds: 0\n  tls: { cert_file: " + cert +
                             ", key_file: " + key + " }\nstorage:\n  path: " + bridge.dir.path() +
                             "/journal.db\n");
  REQUIRE(bridge.start());
  INFO(bridge.process->log());

  httplib::SSLClient https("127.0.0.1", bridge.port());
  https.enable_server_certificate_verification(false);
  auto health = https.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  // The token in ?token=, as commubo registers its URL.
  auto event = https.Post(("/v1/events?token=" + kBridgeToken).c_str(),
                          R"({"event": "inbound", "call_id": "tls-1"})", "application/json");
  REQUIRE(event);
  CHECK(event->status == 202);
  // Plain HTTP on the TLS port gets no answer.
  CHECK_FALSE(httplib::Client("127.0.0.1", bridge.port()).Get("/healthz"));

  CHECK(handshake(bridge.port(), TLS1_2_VERSION).common_name == "bridge-one.test");
  CHECK(handshake(bridge.port(), TLS1_3_VERSION).ok);
  CHECK_FALSE(handshake(bridge.port(), TLS1_1_VERSION).ok);

  Pem second = self_signed("bridge-two.test");
  bridge.dir.write("cert.pem", second.cert);
  bridge.dir.write("key.pem", second.key);
  CHECK(handshake(bridge.port(), TLS1_2_VERSION).common_name == "bridge-one.test");
  bridge.process->signal(SIGHUP);
  REQUIRE(bridge.process->wait_for_log("TLS certificate reloaded"));
  CHECK(handshake(bridge.port(), TLS1_2_VERSION).common_name == "bridge-two.test");

  // A broken pair is refused and the renewed certificate stays in use.
  bridge.dir.write("key.pem", first.key);
  bridge.process->signal(SIGHUP);
  REQUIRE(bridge.process->wait_for_log("TLS certificate reload rejected"));
  CHECK(handshake(bridge.port(), TLS1_3_VERSION).common_name == "bridge-two.test");
  CHECK(bridge.process->stop(SIGTERM) == 0);
}

TEST_CASE("server.tls: unreadable files are located errors", "[cli][tls]") {
  TempDir dir;
  std::string file =
      dir.write("c.yaml", "server:\n  tls: { cert_file: " + dir.path() +
                              "/none.pem, key_file: " + dir.path() + "/none.key }\n");
  auto r = run_process({CALLBRIDGE_BINARY, "validate", "-c", file});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find(file + ":2:21: error: \"server.tls\": cannot read " + dir.path() +
                   "/none.pem") != std::string::npos);
  CHECK(r.err.find("cannot read " + dir.path() + "/none.key") != std::string::npos);
}

TEST_CASE("server.tls: stalled handshakes hold no worker and body limits hold over HTTPS",
          "[e2e][tls][hostile]") {
  Bridge bridge;
  Pem pem = self_signed("bridge.test");
  std::string cert = bridge.dir.write("cert.pem", pem.cert);
  std::string key = bridge.dir.write("key.pem", pem.key);
  bridge.config_path = bridge.dir.write(
      "callbridge.yaml",
      "server:\n  listen: 127.0.0.1:0\n  tokens: [\"" + kBridgeToken +
          "\"]\n  threads: 2\n  drain_seconds: 0\n  max_body_bytes: 4096\n  tls: { cert_file: " +
          cert + ", key_file: " + key + " }\nstorage:\n  path: " + bridge.dir.path() +
          "/journal.db\n");
  REQUIRE(bridge.start());
  INFO(bridge.process->log());
  // More connections than workers that never begin their handshake.
  std::vector<int> stalled;
  for (int i = 0; i < 16; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(bridge.port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    stalled.push_back(fd);
  }
  httplib::SSLClient https("127.0.0.1", bridge.port());
  https.enable_server_certificate_verification(false);
  https.set_read_timeout(5, 0);
  auto started = std::chrono::steady_clock::now();
  auto health = https.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));
  // A chunked body over the limit is refused before it is buffered, as over plain HTTP.
  httplib::SSLClient upload("127.0.0.1", bridge.port());
  upload.enable_server_certificate_verification(false);
  auto big = upload.Post(("/v1/events?token=" + kBridgeToken).c_str(),
                         [](std::size_t offset, httplib::DataSink& sink) {
                           std::string chunk(4096, ' ');
                           sink.write(chunk.data(), chunk.size());
                           if (offset >= 32768) sink.done();
                           return true;
                         },
                         "application/json");
  REQUIRE(big);
  CHECK(big->status == 413);
  for (int fd : stalled) close(fd);
  CHECK(bridge.process->stop(SIGTERM) == 0);
}
