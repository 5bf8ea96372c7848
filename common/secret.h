// A string for secrets (PINs): wiped with OPENSSL_cleanse when destroyed or
// cleared, never copied implicitly, and never printed.
//
// The bytes live in their own anonymous mapping, locked into RAM with mlock
// (so they are never written to swap) and excluded from core dumps
// (MADV_DONTDUMP). Locking is best effort: when RLIMIT_MEMLOCK is exhausted
// the secret still works, unlocked, and locked() says so.
#ifndef HSMD_COMMON_SECRET_H_
#define HSMD_COMMON_SECRET_H_

#include <openssl/crypto.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <new>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace hsmd {

class SecretString {
 public:
  SecretString() = default;
  // Copies `value` into locked memory and wipes `value`'s bytes.
  explicit SecretString(std::string value) {
    Assign(value);
    OPENSSL_cleanse(value.data(), value.size());
  }
  // Copies `bytes` (the caller wipes its own copy).
  static SecretString CopyOf(absl::string_view bytes) {
    SecretString s;
    s.Assign(bytes);
    return s;
  }
  SecretString(const SecretString&) = delete;
  SecretString& operator=(const SecretString&) = delete;
  SecretString(SecretString&& other) noexcept { Swap(other); }
  SecretString& operator=(SecretString&& other) noexcept {
    if (this != &other) {
      Release();
      Swap(other);
    }
    return *this;
  }
  ~SecretString() { Release(); }

  // Wipes the bytes (the whole buffer) and unmaps them.
  void Clear() { Release(); }
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  absl::string_view view() const {
    return data_ == nullptr ? absl::string_view()
                            : absl::string_view(data_, size_);
  }
  // NUL-terminated (PKCS#11 does not need it, but C APIs may).
  const char* data() const { return data_ == nullptr ? "" : data_; }
  // True when the bytes are mlock'ed (false for an empty secret).
  bool locked() const { return locked_; }

 private:
  void Assign(absl::string_view value) {
    if (value.empty()) return;
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t need = value.size() + 1;
    capacity_ = (need + page - 1) / page * page;
    void* p = mmap(nullptr, capacity_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    locked_ = mlock(p, capacity_) == 0;
#ifdef MADV_DONTDUMP
    madvise(p, capacity_, MADV_DONTDUMP);
#endif
    data_ = static_cast<char*>(p);
    std::memcpy(data_, value.data(), value.size());
    data_[value.size()] = '\0';
    size_ = value.size();
  }

  void Release() {
    if (data_ != nullptr) {
      OPENSSL_cleanse(data_, capacity_);
      if (locked_) munlock(data_, capacity_);
      munmap(data_, capacity_);
    }
    data_ = nullptr;
    size_ = 0;
    capacity_ = 0;
    locked_ = false;
  }

  void Swap(SecretString& other) {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
    std::swap(locked_, other.locked_);
  }

  char* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
  bool locked_ = false;
};

}  // namespace hsmd

#endif  // HSMD_COMMON_SECRET_H_
