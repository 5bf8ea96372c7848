// A string for secrets (PINs): wiped with OPENSSL_cleanse when destroyed or
// cleared, never copied implicitly, and never printed.
#ifndef HSMD_COMMON_SECRET_H_
#define HSMD_COMMON_SECRET_H_

#include <openssl/crypto.h>

#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace hsmd {

class SecretString {
 public:
  SecretString() = default;
  explicit SecretString(std::string value) : value_(std::move(value)) {}
  SecretString(const SecretString&) = delete;
  SecretString& operator=(const SecretString&) = delete;
  SecretString(SecretString&& other) noexcept
      : value_(std::move(other.value_)) {
    other.Clear();
  }
  SecretString& operator=(SecretString&& other) noexcept {
    if (this != &other) {
      Clear();
      value_ = std::move(other.value_);
      other.Clear();
    }
    return *this;
  }
  ~SecretString() { Clear(); }

  // Wipes the bytes, including the allocation's unused capacity.
  void Clear() {
    if (value_.capacity() > 0) {
      value_.resize(value_.capacity());
      OPENSSL_cleanse(value_.data(), value_.size());
    }
    value_.clear();
  }
  bool empty() const { return value_.empty(); }
  size_t size() const { return value_.size(); }
  absl::string_view view() const { return value_; }
  const char* data() const { return value_.data(); }

 private:
  std::string value_;
};

}  // namespace hsmd

#endif  // HSMD_COMMON_SECRET_H_
