// Self-signed certificates for tests that serve TLS (server.tls, the console's Secure cookie).
#pragma once

#include <string>

namespace callbridge::testing {

struct Pem {
  std::string cert, key;  // PEM text; empty when OpenSSL could not make them
};

// A self-signed P-256 certificate for CN=`name`, valid from a minute ago for an hour, with its key.
// Each call has a new serial number.
Pem self_signed(const std::string& name);

}  // namespace callbridge::testing
