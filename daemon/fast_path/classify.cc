#include "daemon/fast_path/classify.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>

#include "absl/time/clock.h"
#include "common/fast_path.h"

namespace hsmd::fast_path {
namespace {

constexpr absl::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr size_t kFrameHeaderBytes = 9;
constexpr uint8_t kSettingsType = 0x4;
constexpr size_t kSettingBytes = 6;
// A client's first SETTINGS frame lists each setting once at most; a longer
// one is not client_lib's.
constexpr size_t kMaxOpeningSettings = 16;
constexpr size_t kMaxOpeningBytes = kPreface.size() + kFrameHeaderBytes +
                                    kMaxOpeningSettings * kSettingBytes;

uint32_t Be(const unsigned char* p, size_t n) {
  uint32_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

Verdict ClassifyOpening(absl::string_view bytes) {
  const size_t preface = std::min(bytes.size(), kPreface.size());
  if (bytes.substr(0, preface) != kPreface.substr(0, preface)) {
    return Verdict::kGrpc;
  }
  if (bytes.size() < kPreface.size() + kFrameHeaderBytes) {
    return Verdict::kNeedMore;
  }
  const auto* header =
      reinterpret_cast<const unsigned char*>(bytes.data() + kPreface.size());
  const uint32_t length = Be(header, 3);
  const uint8_t type = header[3];
  const uint8_t flags = header[4];
  const uint32_t stream = Be(header + 5, 4) & 0x7fffffffu;
  // RFC 9113 3.4: the preface is followed by a SETTINGS frame (not an ACK)
  // on stream 0 whose length is a multiple of 6.
  if (type != kSettingsType || flags != 0 || stream != 0 ||
      length % kSettingBytes != 0 ||
      length > kMaxOpeningSettings * kSettingBytes) {
    return Verdict::kGrpc;
  }
  if (bytes.size() < kPreface.size() + kFrameHeaderBytes + length) {
    return Verdict::kNeedMore;
  }
  const unsigned char* entry = header + kFrameHeaderBytes;
  for (uint32_t i = 0; i < length; i += kSettingBytes, entry += kSettingBytes) {
    if (Be(entry, 2) == kFastPathSettingId &&
        Be(entry + 2, 4) == kFastPathSettingValue) {
      return Verdict::kFastPath;
    }
  }
  return Verdict::kGrpc;
}

Transport ClassifyConnection(int fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  char buffer[kMaxOpeningBytes];
  for (;;) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return Transport::kClosed;
    if (n > 0) {
      switch (ClassifyOpening(absl::string_view(buffer, n))) {
        case Verdict::kFastPath:
          return Transport::kFastPath;
        case Verdict::kGrpc:
          return Transport::kGrpc;
        case Verdict::kNeedMore:
          // A full buffer always classifies (kMaxOpeningBytes is the
          // longest opening ClassifyOpening waits for).
          break;
      }
    } else if (errno == EINTR) {
      continue;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return Transport::kClosed;
    }
    // Wait for more: with MSG_PEEK the bytes already there stay readable,
    // so poll for the next arrival by the change in size.
    const int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left_ms <= 0) return Transport::kGrpc;
    const size_t have = n > 0 ? static_cast<size_t>(n) : 0;
    pollfd pfd = {fd, POLLIN, 0};
    if (have == 0) {
      const int rc = poll(&pfd, 1, static_cast<int>(left_ms));
      if (rc < 0 && errno != EINTR) return Transport::kClosed;
      if (rc > 0 && (pfd.revents & (POLLERR | POLLNVAL)) != 0) {
        return Transport::kClosed;
      }
      continue;
    }
    // Part of the opening is there: poll() for input would report it at
    // once, so wait briefly for a hang-up only (a client writes its opening
    // in one go; this is the rare split write).
    pfd.events = POLLRDHUP;
    const int rc = poll(&pfd, 1, 1);
    if (rc > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
      return Transport::kClosed;
    }
  }
}

}  // namespace hsmd::fast_path
