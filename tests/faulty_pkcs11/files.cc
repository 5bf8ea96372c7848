#include "tests/faulty_pkcs11/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"

namespace hsmd::faulty_pkcs11 {
namespace {

absl::Status ErrnoError(absl::string_view what, const std::string& path,
                        int err) {
  const std::string message =
      absl::StrCat(what, " ", path, ": ", strerror(err));
  return err == ENOENT ? absl::NotFoundError(message)
                       : absl::InternalError(message);
}

// A modification time later than any this process gave before. Kernel file
// times are only jiffy-precise, and a freed inode is soon reused: two quick
// writes of the same size could otherwise look identical to a reader that
// compares stat() results, and the second would go unnoticed.
struct timespec NextUniqueMtime() {
  static std::atomic<int64_t> last_ns{0};
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t ns = now.tv_sec * 1000000000LL + now.tv_nsec;
  int64_t last = last_ns.load();
  do {
    if (ns <= last) ns = last + 1;
  } while (!last_ns.compare_exchange_weak(last, ns));
  return {static_cast<time_t>(ns / 1000000000LL),
          static_cast<long>(ns % 1000000000LL)};
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents) {
  std::string temp = path + ".XXXXXX";
  const int fd = mkstemp(temp.data());
  if (fd < 0)
    return ErrnoError("cannot create a temporary file for", path, errno);
  bool renamed = false;
  absl::Cleanup remove_temp = [&] {
    if (!renamed) unlink(temp.c_str());
  };
  {
    absl::Cleanup close_fd = [fd] { close(fd); };
    size_t done = 0;
    while (done < contents.size()) {
      const ssize_t n =
          write(fd, contents.data() + done, contents.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError("cannot write", temp, errno);
      done += static_cast<size_t>(n);
    }
    // mkstemp creates 0600; the module may run as another user in tests.
    if (fchmod(fd, 0644) != 0) return ErrnoError("cannot chmod", temp, errno);
    const struct timespec times[2] = {{0, UTIME_OMIT}, NextUniqueMtime()};
    if (futimens(fd, times) != 0) {
      return ErrnoError("cannot set the time of", temp, errno);
    }
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    return ErrnoError("cannot rename a temporary file to", path, errno);
  }
  renamed = true;
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadAllFromFd(int fd) {
  std::string out;
  char buffer[4096];
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::InternalError(
          absl::StrCat("read failed: ", strerror(errno)));
    }
    if (n == 0) return out;
    out.append(buffer, static_cast<size_t>(n));
  }
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path, errno);
  absl::Cleanup close_fd = [fd] { close(fd); };
  absl::StatusOr<std::string> contents = ReadAllFromFd(fd);
  if (!contents.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot read ", path, ": ", contents.status().message()));
  }
  return contents;
}

}  // namespace hsmd::faulty_pkcs11
