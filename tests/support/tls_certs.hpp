#pragma once

// A throw-away certificate authority for tests of tls://: EC P-256 keys,
// a self-signed CA and leaf certificates it signs, written as PEM files into
// a directory the caller owns (keys with mode 0600, as relay.tls.key-file
// requires).

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace relay::test {

/// The files one node needs for relay.tls.*.
struct tls_files {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};

class test_ca {
public:
  /// Makes the CA's key and self-signed certificate "<dir>/<name>-ca.pem".
  test_ca(std::string dir, std::string name)
    : dir_(std::move(dir)), name_(std::move(name)), key_(make_key()) {
    cert_ = make_cert(name_ + " CA", key_.get(), nullptr, nullptr, true, "");
    ca_file_ = dir_ + "/" + name_ + "-ca.pem";
    write_cert(ca_file_, cert_.get());
  }

  /// The CA's certificate file (what relay.tls.ca-file names).
  const std::string& ca_file() const {
    return ca_file_;
  }

  /// Issues a certificate for DNS name `dns` (also its common name) and
  /// writes "<dir>/<dns>.pem" and "<dir>/<dns>.key".
  tls_files issue(const std::string& dns) const {
    auto key = make_key();
    auto cert = make_cert(dns, key.get(), cert_.get(), key_.get(), false, dns);
    tls_files result{ca_file_, dir_ + "/" + dns + ".pem",
                     dir_ + "/" + dns + ".key"};
    write_cert(result.cert_file, cert.get());
    auto* f = std::fopen(result.key_file.c_str(), "w");
    if (f == nullptr)
      throw std::runtime_error("cannot write " + result.key_file);
    ::chmod(result.key_file.c_str(), 0600);
    PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    return result;
  }

private:
  using key_ptr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
  using cert_ptr = std::unique_ptr<X509, decltype(&X509_free)>;

  static key_ptr make_key() {
    key_ptr key{EVP_EC_gen("P-256"), EVP_PKEY_free};
    if (!key)
      throw std::runtime_error("EVP_EC_gen failed");
    return key;
  }

  static void add_ext(X509* x, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : x, x, nullptr, nullptr,
                   0);
    auto* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (ext == nullptr)
      throw std::runtime_error("bad certificate extension");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }

  cert_ptr make_cert(const std::string& cn, EVP_PKEY* key, X509* issuer,
                     EVP_PKEY* issuer_key, bool ca,
                     const std::string& dns) const {
    cert_ptr x{X509_new(), X509_free};
    X509_set_version(x.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x.get()), ++serial_);
    X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), 30L * 24 * 3600);
    X509_set_pubkey(x.get(), key);
    auto* subject = X509_get_subject_name(x.get());
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(
                                 cn.c_str()),
                               -1, -1, 0);
    X509_set_issuer_name(x.get(), issuer != nullptr
                                    ? X509_get_subject_name(issuer)
                                    : subject);
    add_ext(x.get(), issuer, NID_subject_key_identifier, "hash");
    if (ca) {
      add_ext(x.get(), issuer, NID_basic_constraints, "critical,CA:TRUE");
      add_ext(x.get(), issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
      add_ext(x.get(), issuer, NID_basic_constraints, "CA:FALSE");
      add_ext(x.get(), issuer, NID_subject_alt_name, ("DNS:" + dns).c_str());
    }
    if (X509_sign(x.get(), issuer_key != nullptr ? issuer_key : key,
                  EVP_sha256())
        == 0)
      throw std::runtime_error("X509_sign failed");
    return x;
  }

  static void write_cert(const std::string& path, X509* x) {
    auto* f = std::fopen(path.c_str(), "w");
    if (f == nullptr)
      throw std::runtime_error("cannot write " + path);
    PEM_write_X509(f, x);
    std::fclose(f);
  }

  std::string dir_;
  std::string name_;
  key_ptr key_;
  cert_ptr cert_{nullptr, X509_free};
  std::string ca_file_;
  mutable long serial_ = 0;
};

} // namespace relay::test
