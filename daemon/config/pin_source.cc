#include "daemon/config/pin_source.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "daemon/logging.h"

namespace hsmd::config {
namespace {

absl::Status OpenError(const std::string& path, int err) {
  std::string message =
      absl::StrCat("cannot open PIN file ", path, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::FailedPreconditionError(message);
  }
}

// The buffer a PIN file is read into: its own mapping, locked into RAM
// (best effort) and left out of core dumps, wiped before it is unmapped.
class ReadBuffer {
 public:
  static constexpr size_t kBytes = 4096;
  static_assert(kBytes >= kMaxPinBytes + 2, "room for the PIN and CR LF");

  ReadBuffer() {
    void* p = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    data_ = static_cast<char*>(p);
    locked_ = mlock(data_, kBytes) == 0;
#ifdef MADV_DONTDUMP
    madvise(data_, kBytes, MADV_DONTDUMP);
#endif
  }
  ReadBuffer(const ReadBuffer&) = delete;
  ReadBuffer& operator=(const ReadBuffer&) = delete;
  ~ReadBuffer() {
    if (data_ == nullptr) return;
    OPENSSL_cleanse(data_, kBytes);
    if (locked_) munlock(data_, kBytes);
    munmap(data_, kBytes);
  }

  char* data() { return data_; }
  bool locked() const { return locked_; }

 private:
  char* data_ = nullptr;
  bool locked_ = false;
};

// mlock fails when RLIMIT_MEMLOCK is used up (or 0): the PIN still works but
// may reach swap. Worth one debug line per process, not one per login.
void NoteUnlocked() {
  static std::atomic<bool> logged{false};
  if (!logged.exchange(true)) {
    log::Debug(
        "PIN memory could not be locked (mlock failed; RLIMIT_MEMLOCK?); "
        "continuing without");
  }
}

}  // namespace

absl::StatusOr<SecretString> ReadPinFile(const std::string& path) {
  // Check the opened file (fstat), not the path, so a swapped file cannot
  // slip past the mode check.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return OpenError(path, errno);
  absl::Cleanup close_fd = [fd] { close(fd); };
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot stat PIN file ", path, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("PIN file ", path, " is not a regular file"));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "PIN file %s has mode %04o: it must not be readable or writable by "
        "group or others (chmod 0600 %s)",
        path, st.st_mode & 07777, path));
  }
  // One buffer, locked and wiped on every path, so no stray copy of the PIN
  // stays in freed memory or swap.
  ReadBuffer buffer;
  char* data = buffer.data();
  if (data == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate memory to read PIN file ", path));
  }
  size_t total = 0;
  while (total < kMaxPinBytes + 2) {
    ssize_t n = read(fd, data + total, kMaxPinBytes + 2 - total);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot read PIN file ", path, ": ", std::strerror(errno)));
    }
    if (n == 0) break;
    total += static_cast<size_t>(n);
  }
  size_t len = total;
  if (len > 0 && data[len - 1] == '\n') {
    --len;
    if (len > 0 && data[len - 1] == '\r') --len;
  }
  if (len > kMaxPinBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("PIN file ", path, " is too large to hold a PIN (over ",
                     kMaxPinBytes, " bytes)"));
  }
  if (len == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("PIN file ", path, " is empty"));
  }
  SecretString pin = SecretString::CopyOf(absl::string_view(data, len));
  if (!buffer.locked() || !pin.locked()) NoteUnlocked();
  return pin;
}

absl::StatusOr<SecretString> ReadPinCredential(absl::string_view name) {
  const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
  if (dir == nullptr || dir[0] == '\0') {
    return absl::FailedPreconditionError(absl::StrCat(
        "PIN credential \"", name,
        "\": $CREDENTIALS_DIRECTORY is not set (start hsmd from systemd with "
        "LoadCredential=",
        name, ":/path/to/pin)"));
  }
  if (name.empty() || absl::StrContains(name, '/')) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", name, "\" is not a credential name"));
  }
  return ReadPinFile(absl::StrCat(dir, "/", name));
}

absl::StatusOr<SecretString> ReadPin(const Pin& pin) {
  switch (pin.source_case()) {
    case Pin::kFile:
      return ReadPinFile(pin.file());
    case Pin::kCredential:
      return ReadPinCredential(pin.credential());
    case Pin::SOURCE_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("no PIN source configured");
}

std::function<absl::StatusOr<SecretString>()> MakePinSource(const Pin& pin) {
  return [pin]() { return ReadPin(pin); };
}

std::string DescribePinSource(const Pin& pin) {
  switch (pin.source_case()) {
    case Pin::kFile:
      return absl::StrCat("file:", pin.file());
    case Pin::kCredential:
      return absl::StrCat("credential:", pin.credential());
    case Pin::SOURCE_NOT_SET:
      break;
  }
  return "none";
}

}  // namespace hsmd::config
