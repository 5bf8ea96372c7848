#include "daemon/unix_socket.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace hsmd {
namespace {

std::string Errno(int err) { return std::strerror(err); }

// mkdir -p with mode 0750 for every directory created; the last one gets
// `group` when given.
absl::Status MakeDirectories(const std::string& dir,
                             std::optional<gid_t> group) {
  if (dir.empty()) return absl::OkStatus();
  struct stat st;
  if (stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("socket directory ", dir, " is not a directory"));
    }
    return absl::OkStatus();
  }
  size_t slash = dir.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    if (absl::Status s = MakeDirectories(dir.substr(0, slash), std::nullopt);
        !s.ok()) {
      return s;
    }
  }
  if (mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create socket directory ", dir, ": ", Errno(errno)));
  }
  if (group.has_value() &&
      chown(dir.c_str(), static_cast<uid_t>(-1), *group) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot give socket directory ", dir, " to group ", *group,
                     ": ", Errno(errno)));
  }
  // mkdir's mode is filtered by the umask; make it exactly 0750.
  if (chmod(dir.c_str(), 0750) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot chmod 0750 ", dir, ": ", Errno(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

bool SomethingListensOn(const std::string& path) {
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int rc;
  do {
    rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  } while (rc != 0 && errno == EINTR);
  close(fd);
  return rc == 0;
}

absl::StatusOr<std::unique_ptr<SocketPath>> SocketPath::Prepare(
    std::string path, std::optional<gid_t> directory_group) {
  if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket path \"", path, "\" is empty or longer than ",
                     sizeof(sockaddr_un::sun_path) - 1, " bytes"));
  }
  size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    if (absl::Status s =
            MakeDirectories(path.substr(0, slash), directory_group);
        !s.ok()) {
      return s;
    }
  }
  const std::string lock_path = absl::StrCat(path, ".lock");
  int lock_fd =
      open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lock_fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open lock file ", lock_path, ": ", Errno(errno)));
  }
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(lock_fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "another hsmd is running on ", path, " (it holds ", lock_path, ")"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("cannot lock ", lock_path, ": ", Errno(err)));
  }
  std::unique_ptr<SocketPath> socket(new SocketPath(path, lock_fd));
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return socket;
    return absl::FailedPreconditionError(
        absl::StrCat("cannot stat ", path, ": ", Errno(errno)));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " exists and is not a socket; refusing to replace it"));
  }
  if (SomethingListensOn(path)) {
    return absl::FailedPreconditionError(
        absl::StrCat("another process is listening on ", path,
                     " (is another hsmd running?)"));
  }
  // A socket file nobody accepts on: left by a daemon that died.
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot remove stale socket ", path, ": ", Errno(errno)));
  }
  return socket;
}

SocketPath::~SocketPath() { close(lock_fd_); }

absl::StatusOr<int> SocketPath::Listen(int backlog) const {
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path_.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket path ", path_, " is too long"));
  }
  std::memcpy(addr.sun_path, path_.data(), path_.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("socket(AF_UNIX): ", Errno(errno)));
  }
  // bind() creates the file with the umask applied: keep it private until
  // SetPermissions gives it the configured mode and group. (The umask is
  // process-wide; nothing else creates files while the daemon starts.)
  const mode_t old_umask = umask(0177);
  const int rc =
      bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  const int bind_errno = errno;
  umask(old_umask);
  if (rc != 0) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot bind ", path_, ": ", Errno(bind_errno)));
  }
  if (listen(fd, backlog) != 0) {
    const int err = errno;
    close(fd);
    RemoveSocket();
    return absl::FailedPreconditionError(
        absl::StrCat("cannot listen on ", path_, ": ", Errno(err)));
  }
  return fd;
}

absl::Status SocketPath::SetPermissions(uint32_t mode,
                                        std::optional<gid_t> gid) const {
  if (gid.has_value() &&
      chown(path_.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot give ", path_, " to group ", *gid, ": ", Errno(errno)));
  }
  if (chmod(path_.c_str(), static_cast<mode_t>(mode)) != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot chmod %04o %s: %s", mode, path_, Errno(errno)));
  }
  return absl::OkStatus();
}

void SocketPath::RemoveSocket() const {
  struct stat st;
  if (lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    unlink(path_.c_str());
  }
}

}  // namespace hsmd
