#include "tests/fakes/certificate.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <atomic>

namespace callbridge::testing {

namespace {

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

}  // namespace

Pem self_signed(const std::string& name) {
  static std::atomic<long> serial{1};
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (!key) return {};
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME* subject = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, subject);
  Pem out;
  if (X509_sign(x, key, EVP_sha256()) > 0) {
    BIO* cert = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(cert, x);
    BIO* pkey = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(pkey, key, nullptr, nullptr, 0, nullptr, nullptr);
    out = {bio_text(cert), bio_text(pkey)};
  }
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

}  // namespace callbridge::testing
