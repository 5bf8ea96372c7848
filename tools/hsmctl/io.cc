#include "tools/hsmctl/io.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "tools/hsmctl/exit_codes.h"

namespace hsmd::hsmctl {
namespace {

absl::Status ErrnoError(absl::string_view verb, absl::string_view what,
                        absl::string_view path, int err) {
  return LocalIoError(
      absl::StrCat("cannot ", verb, " ", what, " ", path, ": ", strerror(err)));
}

absl::Status TooLarge(absl::string_view what, absl::string_view path) {
  return LocalIoError(absl::StrCat(what, " ", path, " is larger than ",
                                   kMaxInputBytes, " bytes"));
}

}  // namespace

absl::StatusOr<std::string> ReadInput(absl::string_view what,
                                      absl::string_view path,
                                      std::istream& in) {
  std::string data;
  char buffer[64 * 1024];
  if (path == "-") {
    while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
      data.append(buffer, static_cast<size_t>(in.gcount()));
      if (data.size() > kMaxInputBytes) return TooLarge(what, "(stdin)");
    }
    if (in.bad()) {
      return LocalIoError(absl::StrCat("cannot read ", what, " from stdin"));
    }
    return data;
  }
  const std::string p(path);
  int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("read", what, path, errno);
  absl::Cleanup closer = [fd] { close(fd); };
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read", what, path, errno);
    }
    if (n == 0) break;
    data.append(buffer, static_cast<size_t>(n));
    if (data.size() > kMaxInputBytes) return TooLarge(what, path);
  }
  return data;
}

absl::Status WriteOutput(absl::string_view what, absl::string_view path,
                         absl::string_view data, std::ostream& out,
                         mode_t mode) {
  if (path == "-") {
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.flush();
    if (!out) {
      return LocalIoError(absl::StrCat("cannot write ", what, " to stdout"));
    }
    return absl::OkStatus();
  }
  const std::string p(path);
  int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoError("write", what, path, errno);
  absl::Cleanup closer = [&fd] {
    if (fd >= 0) close(fd);
  };
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write", what, path, errno);
    }
    done += static_cast<size_t>(n);
  }
  // close() can report a deferred write error (e.g. on NFS or a full disk).
  int rc = close(fd);
  fd = -1;
  if (rc != 0) return ErrnoError("write", what, path, errno);
  return absl::OkStatus();
}

}  // namespace hsmd::hsmctl
