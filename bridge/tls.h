// The listener's TLS certificate: read from PEM files, installed on an OpenSSL context (TLS 1.2
// or later only), and replaceable while serving. A reload takes effect for new connections;
// open ones keep the certificate they were made with.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <mutex>
#include <string>

namespace callbridge::bridge {

class TlsCertificate {
 public:
  TlsCertificate(std::string cert_file, std::string key_file);
  ~TlsCertificate();
  TlsCertificate(const TlsCertificate&) = delete;
  TlsCertificate& operator=(const TlsCertificate&) = delete;

  // Reads the certificate chain and private key again; false with `error` keeps the old pair.
  bool load(std::string& error);
  // Sets the minimum protocol version and a per-handshake hook that presents the current pair.
  bool install(SSL_CTX& ctx, std::string& error);

 private:
  struct Pair;
  static int select(SSL* ssl, void* self);

  std::string cert_file_, key_file_;
  std::mutex mutex_;
  std::shared_ptr<const Pair> current_;
};

}  // namespace callbridge::bridge
