#include "bridge/tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>

namespace callbridge::bridge {

struct TlsCertificate::Pair {
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  STACK_OF(X509) * chain = nullptr;
  ~Pair() {
    X509_free(cert);
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
  }
};

namespace {

std::string openssl_error() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

}  // namespace

TlsCertificate::TlsCertificate(std::string cert_file, std::string key_file)
    : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)) {}

TlsCertificate::~TlsCertificate() = default;

bool TlsCertificate::load(std::string& error) {
  auto pair = std::make_shared<Pair>();
  BIO* in = BIO_new_file(cert_file_.c_str(), "r");
  if (!in) {
    error = "cannot read " + cert_file_;
    ERR_clear_error();
    return false;
  }
  pair->cert = PEM_read_bio_X509(in, nullptr, nullptr, nullptr);
  pair->chain = sk_X509_new_null();
  while (X509* extra = PEM_read_bio_X509(in, nullptr, nullptr, nullptr))
    sk_X509_push(pair->chain, extra);
  ERR_clear_error();  // the end of the file reads as an error
  BIO_free(in);
  if (!pair->cert) {
    error = cert_file_ + ": no PEM certificate";
    return false;
  }
  in = BIO_new_file(key_file_.c_str(), "r");
  if (!in) {
    error = "cannot read " + key_file_;
    ERR_clear_error();
    return false;
  }
  pair->key = PEM_read_bio_PrivateKey(in, nullptr, nullptr, nullptr);
  BIO_free(in);
  if (!pair->key) {
    error = key_file_ + ": no PEM private key (" + openssl_error() + ")";
    return false;
  }
  if (X509_check_private_key(pair->cert, pair->key) != 1) {
    error = key_file_ + " is not the key of " + cert_file_;
    ERR_clear_error();
    return false;
  }
  std::lock_guard lock(mutex_);
  current_ = std::move(pair);
  return true;
}

int TlsCertificate::select(SSL* ssl, void* self) {
  auto* tls = static_cast<TlsCertificate*>(self);
  std::shared_ptr<const Pair> pair;
  {
    std::lock_guard lock(tls->mutex_);
    pair = tls->current_;
  }
  if (!pair) return 0;
  return SSL_use_cert_and_key(ssl, pair->cert, pair->key, pair->chain, 1) == 1 ? 1 : 0;
}

bool TlsCertificate::install(SSL_CTX& ctx, std::string& error) {
  if (SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION) != 1) {
    error = "cannot require TLS 1.2: " + openssl_error();
    return false;
  }
  SSL_CTX_set_cert_cb(&ctx, &TlsCertificate::select, this);
  return true;
}

}  // namespace callbridge::bridge
