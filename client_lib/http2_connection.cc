#include "client_lib/http2_connection.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/error_detail.h"
#include "common/fast_path.h"
#include "common/http2_settings.h"
#include "google/rpc/status.pb.h"

namespace hsmd::client {
namespace {

constexpr size_t kInputBufferBytes = 32 * 1024;
// nghttp2 output is gathered up to this size before each send().
constexpr size_t kOutputBatchBytes = 64 * 1024;
// Buffers a large call grew beyond this are released afterwards.
constexpr size_t kKeepBufferBytes = 256 * 1024;
// Bound on the response header fields we keep (gRPC's own default limit is
// far lower); protects against a hostile or broken peer.
constexpr size_t kMaxResponseHeaderBytes = 256 * 1024;
constexpr size_t kMaxErrorTextBytes = 200;

int64_t MonotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// "connection refused" rather than "Connection refused": it follows a colon.
std::string ErrnoText(int err) {
  char buf[128];
  // GNU strerror_r: returns a pointer to the message (maybe not `buf`).
  std::string text = strerror_r(err, buf, sizeof(buf));
  if (!text.empty()) text[0] = absl::ascii_tolower(text[0]);
  return text;
}

timespec PollTimeout(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  return absl::ToTimespec(d);
}

nghttp2_nv MakeNv(absl::string_view name, absl::string_view value) {
  nghttp2_nv nv;
  nv.name = reinterpret_cast<uint8_t*>(const_cast<char*>(name.data()));
  nv.namelen = name.size();
  nv.value = reinterpret_cast<uint8_t*>(const_cast<char*>(value.data()));
  nv.valuelen = value.size();
  nv.flags = NGHTTP2_NV_FLAG_NONE;
  return nv;
}

std::string Truncated(absl::string_view text) {
  if (text.size() <= kMaxErrorTextBytes) return std::string(text);
  return absl::StrCat(text.substr(0, kMaxErrorTextBytes), "...");
}

}  // namespace

Deadline Deadline::After(absl::Duration timeout) {
  const int64_t now = MonotonicNanos();
  const int64_t delta = absl::ToInt64Nanoseconds(timeout);
  // Saturate: an infinite timeout must not wrap around.
  const int64_t at = delta > INT64_MAX - now ? INT64_MAX : now + delta;
  return Deadline(at, timeout);
}

Deadline Deadline::CappedAt(absl::Duration timeout) const {
  Deadline other = After(timeout);
  return other.at_nanos_ < at_nanos_ ? other : *this;
}

absl::Duration Deadline::Remaining() const {
  return absl::Nanoseconds(at_nanos_ - MonotonicNanos());
}

absl::StatusOr<std::unique_ptr<Http2Connection>> Http2Connection::Connect(
    absl::string_view socket_path, const Deadline& deadline,
    size_t max_response_bytes, bool announce_fast_path) {
  sockaddr_un addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (socket_path.empty()) {
    return absl::InvalidArgumentError("hsmd socket path is empty");
  }
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "hsmd socket path %s is %d bytes; Unix socket paths are limited to "
        "%d",
        socket_path, socket_path.size(), sizeof(addr.sun_path) - 1));
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  const auto unavailable = [&](absl::string_view what) {
    return absl::UnavailableError(
        absl::StrCat("hsmd unavailable at ", socket_path, ": ", what));
  };

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return unavailable(absl::StrCat("socket: ", ErrnoText(errno)));
  // A blocking AF_UNIX connect only waits when the listen queue is full;
  // SO_SNDTIMEO bounds that wait. Later I/O uses MSG_DONTWAIT, so the option
  // has no other effect.
  for (;;) {
    absl::Duration remaining = deadline.Remaining();
    if (remaining <= absl::ZeroDuration()) {
      close(fd);
      return unavailable("timed out connecting");
    }
    timeval tv = absl::ToTimeval(std::max(remaining, absl::Microseconds(1)));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
      const int err = errno;
      close(fd);
      return unavailable(absl::StrCat("setsockopt: ", ErrnoText(err)));
    }
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) ==
        0) {
      break;
    }
    const int err = errno;
    if (err == EINTR) continue;
    close(fd);
    if (err == EAGAIN || err == EINPROGRESS) {
      return unavailable(
          "timed out connecting (hsmd is not accepting connections)");
    }
    return unavailable(ErrnoText(err));
  }
  return FromConnectedSocket(fd, socket_path, max_response_bytes,
                             announce_fast_path);
}

absl::StatusOr<std::unique_ptr<Http2Connection>>
Http2Connection::FromConnectedSocket(int fd, absl::string_view peer_name,
                                     size_t max_response_bytes,
                                     bool announce_fast_path) {
  std::unique_ptr<Http2Connection> connection(
      new Http2Connection(fd, std::string(peer_name), max_response_bytes));
  absl::Status status = connection->Init(announce_fast_path);
  if (!status.ok()) return status;
  return connection;
}

Http2Connection::Http2Connection(int fd, std::string peer_name,
                                 size_t max_response_bytes)
    : fd_(fd),
      peer_name_(std::move(peer_name)),
      max_response_bytes_(max_response_bytes),
      in_buffer_(new char[kInputBufferBytes]),
      decoder_(max_response_bytes) {}

absl::Status Http2Connection::Init(bool announce_fast_path) {
  nghttp2_session_callbacks* callbacks;
  if (nghttp2_session_callbacks_new(&callbacks) != 0) {
    return absl::ResourceExhaustedError(
        "out of memory creating nghttp2 "
        "callbacks");
  }
  nghttp2_session_callbacks_set_on_header_callback(callbacks, &OnHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks,
                                                            &OnDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks,
                                                         &OnStreamClose);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &OnFrameRecv);
  nghttp2_session_callbacks_set_error_callback2(callbacks, &OnError);
  const int rv = nghttp2_session_client_new(&session_, callbacks, this);
  nghttp2_session_callbacks_del(callbacks);
  if (rv != 0) {
    session_ = nullptr;
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot create an HTTP/2 session: ", nghttp2_strerror(rv)));
  }
  const uint32_t window = WindowFor(max_response_bytes_);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window},
      // hsmd serves connections that announce client_lib on its fast path.
      {kFastPathSettingId, kFastPathSettingValue},
  };
  return SubmitOpeningSettings(
      session_, absl::MakeConstSpan(settings, announce_fast_path
                                                  ? std::size(settings)
                                                  : std::size(settings) - 1),
      window);
}

Http2Connection::~Http2Connection() {
  if (session_ != nullptr) nghttp2_session_del(session_);
  if (fd_ >= 0) close(fd_);
}

bool Http2Connection::usable() const {
  return !broken_ && !peer_closed_ && !goaway_received_ &&
         session_ != nullptr && nghttp2_session_want_read(session_) != 0;
}

absl::Status Http2Connection::Unavailable(absl::string_view what) const {
  return absl::UnavailableError(
      absl::StrCat("hsmd unavailable at ", peer_name_, ": ", what));
}

absl::Status Http2Connection::SocketError(absl::string_view operation,
                                          int err) const {
  if (err == ECONNRESET || err == EPIPE) {
    return Unavailable("connection closed by hsmd");
  }
  return Unavailable(absl::StrCat(operation, ": ", ErrnoText(err)));
}

absl::Status Http2Connection::PumpOutput() {
  for (;;) {
    if (!OutputPending()) {
      out_buffer_.clear();
      out_offset_ = 0;
      while (out_buffer_.size() < kOutputBatchBytes) {
        const uint8_t* data;
        const ssize_t n = nghttp2_session_mem_send(session_, &data);
        if (n < 0) {
          broken_ = true;
          return absl::InternalError(
              absl::StrCat("HTTP/2 session with hsmd at ", peer_name_,
                           " failed: ", nghttp2_strerror(static_cast<int>(n))));
        }
        if (n == 0) break;
        out_buffer_.append(reinterpret_cast<const char*>(data),
                           static_cast<size_t>(n));
      }
      if (out_buffer_.empty()) return absl::OkStatus();
    }
    const ssize_t n =
        send(fd_, out_buffer_.data() + out_offset_,
             out_buffer_.size() - out_offset_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return absl::OkStatus();
      broken_ = true;
      return SocketError("send", err);
    }
    out_offset_ += static_cast<size_t>(n);
    bytes_sent_this_call_ += static_cast<size_t>(n);
  }
}

void Http2Connection::ReadInput() {
  for (;;) {
    const ssize_t n =
        recv(fd_, in_buffer_.get(), kInputBufferBytes, MSG_DONTWAIT);
    if (n == 0) {
      peer_closed_ = true;
      return;
    }
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      broken_ = true;
      if (transport_error_.ok()) transport_error_ = SocketError("recv", err);
      return;
    }
    const ssize_t consumed = nghttp2_session_mem_recv(
        session_, reinterpret_cast<const uint8_t*>(in_buffer_.get()),
        static_cast<size_t>(n));
    if (consumed < 0) {
      broken_ = true;
      if (transport_error_.ok()) {
        transport_error_ = absl::InternalError(
            absl::StrCat("HTTP/2 protocol error from hsmd at ", peer_name_,
                         ": ", nghttp2_strerror(static_cast<int>(consumed)),
                         last_nghttp2_error_.empty() ? "" : " (",
                         Truncated(last_nghttp2_error_),
                         last_nghttp2_error_.empty() ? "" : ")"));
      }
      return;
    }
    if (static_cast<size_t>(n) < kInputBufferBytes) return;
  }
}

void Http2Connection::ResetCallState() {
  stream_id_ = -1;
  request_body_ = {};
  request_offset_ = 0;
  bytes_sent_this_call_ = 0;
  stream_closed_ = false;
  remote_ended_ = false;
  stream_error_code_ = 0;
  saw_headers_ = false;
  http_status_ = 0;
  has_grpc_status_ = false;
  header_bytes_ = 0;
  content_type_.clear();
  grpc_status_.clear();
  grpc_message_.clear();
  grpc_status_details_.clear();
  response_error_ = absl::OkStatus();
  decoder_.Reset(kKeepBufferBytes);
}

void Http2Connection::TrimBuffers() {
  if (request_buffer_.capacity() > kKeepBufferBytes) {
    std::string().swap(request_buffer_);
  }
  if (!OutputPending() && out_buffer_.capacity() > 2 * kOutputBatchBytes) {
    std::string().swap(out_buffer_);
    out_offset_ = 0;
  }
  decoder_.Reset(kKeepBufferBytes);
}

bool Http2Connection::CheckIdle() {
  if (!usable()) return false;
  ReadInput();
  if (!usable()) return false;
  if (!PumpOutput().ok()) return false;
  return usable();
}

absl::Status Http2Connection::Call(absl::string_view path,
                                   absl::string_view framed_request,
                                   const Deadline& deadline,
                                   absl::string_view* response_message,
                                   Failure* failure) {
  *response_message = {};
  *failure = Failure::kOther;
  if (!usable()) {
    *failure = Failure::kNotSent;
    return Unavailable("connection already closed");
  }
  ResetCallState();
  if (deadline.Expired()) {
    *failure = Failure::kNotSent;
    return absl::DeadlineExceededError(absl::StrCat(
        "deadline of ", absl::FormatDuration(deadline.timeout()),
        " expired before ", path, " was sent to hsmd at ", peer_name_));
  }

  const std::string timeout = EncodeGrpcTimeout(deadline.Remaining());
  const nghttp2_nv headers[] = {
      MakeNv(":method", "POST"),
      MakeNv(":scheme", "http"),
      MakeNv(":path", path),
      MakeNv(":authority", "localhost"),
      MakeNv("content-type", "application/grpc"),
      MakeNv("te", "trailers"),
      MakeNv("grpc-timeout", timeout),
      MakeNv("user-agent", "hsmd-client_lib/1"),
  };
  nghttp2_data_provider body;
  body.source.ptr = this;
  body.read_callback = &ReadRequestBody;
  request_body_ = framed_request;
  // nghttp2 copies the header fields, so `headers` may go out of scope.
  stream_id_ = nghttp2_submit_request(session_, nullptr, headers,
                                      std::size(headers), &body, nullptr);
  if (stream_id_ < 0) {
    // E.g. stream ids exhausted after 2^30 calls: nothing was sent.
    broken_ = true;
    *failure = Failure::kNotSent;
    return Unavailable(absl::StrCat("cannot start an HTTP/2 stream: ",
                                    nghttp2_strerror(stream_id_)));
  }

  absl::Status status;
  bool deadline_exceeded = false;
  for (;;) {
    status = PumpOutput();
    if (!status.ok()) {
      // A server may answer and close before reading everything we send
      // (e.g. our SETTINGS ACK); its answer is then already queued on our
      // side of the socket.
      ReadInput();
      break;
    }
    // A server may answer before reading the whole request (e.g. it rejects
    // an oversized one); its END_STREAM completes the call either way.
    if (stream_closed_ || remote_ended_) break;
    if (peer_closed_ || !transport_error_.ok()) break;
    if (nghttp2_session_want_read(session_) == 0) break;
    const absl::Duration remaining = deadline.Remaining();
    if (remaining <= absl::ZeroDuration()) {
      deadline_exceeded = true;
      break;
    }
    pollfd pfd;
    pfd.fd = fd_;
    pfd.events = static_cast<short>(POLLIN | (OutputPending() ? POLLOUT : 0));
    pfd.revents = 0;
    const timespec ts = PollTimeout(remaining);
    const int ready = ppoll(&pfd, 1, &ts, nullptr);
    if (ready < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      broken_ = true;
      status = SocketError("poll", err);
      break;
    }
    if (ready == 0) continue;  // The deadline check above ends the call.
    if ((pfd.revents & POLLNVAL) != 0) {
      broken_ = true;
      status = Unavailable("socket descriptor is no longer valid");
      break;
    }
    if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) != 0) ReadInput();
  }

  if (remote_ended_ && !stream_closed_) {
    // Stop sending the rest of the request; the response is complete.
    if (status.ok()) {
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id_,
                                NGHTTP2_CANCEL);
      PumpOutput().IgnoreError();
    }
    // If the reset has not left yet, the session still references
    // `framed_request`: do not reuse it.
    if (!stream_closed_) broken_ = true;
  }
  if (!stream_closed_ && !remote_ended_) {
    // The call ended before its stream did: the session cannot be trusted
    // for another call (and still references `framed_request`).
    broken_ = true;
    stream_id_ = -1;
    const bool nothing_sent = bytes_sent_this_call_ == 0;
    if (deadline_exceeded) {
      return absl::DeadlineExceededError(absl::StrCat(
          "deadline of ", absl::FormatDuration(deadline.timeout()),
          " exceeded waiting for hsmd at ", peer_name_, " to answer ", path));
    }
    if (status.ok()) status = transport_error_;
    if (status.ok() && peer_closed_) {
      status = Unavailable("connection closed by hsmd");
    }
    if (status.ok()) {
      status = absl::InternalError(
          absl::StrCat("HTTP/2 session with hsmd at ", peer_name_, " ended",
                       last_nghttp2_error_.empty() ? "" : ": ",
                       Truncated(last_nghttp2_error_)));
    }
    if (nothing_sent && absl::IsUnavailable(status)) {
      *failure = Failure::kNotSent;
    }
    return status;
  }
  // Frames queued while reading (WINDOW_UPDATE, SETTINGS ACK) go out now if
  // the socket takes them, otherwise with the next call. A failure here
  // does not change this call's outcome.
  if (!PumpOutput().ok()) broken_ = true;
  status = StatusFromResponse(path, response_message, failure);
  stream_id_ = -1;
  return status;
}

absl::Status Http2Connection::StatusFromResponse(
    absl::string_view path, absl::string_view* response_message,
    Failure* failure) {
  if (!response_error_.ok()) return response_error_;
  if (stream_error_code_ != NGHTTP2_NO_ERROR && !has_grpc_status_ &&
      !remote_ended_) {
    if (stream_error_code_ == NGHTTP2_REFUSED_STREAM && !saw_headers_) {
      *failure = Failure::kRefused;
      return Unavailable(goaway_received_
                             ? "hsmd is closing the connection (GOAWAY) and "
                               "did not process the request"
                             : "hsmd refused the request (REFUSED_STREAM)");
    }
    return absl::Status(
        GrpcCodeFromHttp2Error(stream_error_code_),
        absl::StrCat("hsmd at ", peer_name_, " reset the stream for ", path,
                     " (", nghttp2_http2_strerror(stream_error_code_), ")"));
  }
  if (http_status_ != 200) {
    std::string message =
        http_status_ == 0
            ? absl::StrCat("hsmd at ", peer_name_,
                           " sent no response headers for ", path)
            : absl::StrCat("hsmd at ", peer_name_, " answered ", path,
                           " with HTTP status ", http_status_);
    if (!grpc_message_.empty()) {
      absl::StrAppend(&message, ": ", PercentDecodeGrpcMessage(grpc_message_));
    }
    return absl::Status(http_status_ == 0
                            ? absl::StatusCode::kInternal
                            : GrpcCodeFromHttpStatus(http_status_),
                        message);
  }
  if (!has_grpc_status_) {
    return absl::InternalError(
        absl::StrCat("missing grpc-status in the "
                     "response from hsmd at ",
                     peer_name_, " to ", path));
  }
  if (!absl::StartsWith(content_type_, "application/grpc")) {
    return absl::InternalError(absl::StrCat(
        "hsmd at ", peer_name_, " answered ", path, " with content-type '",
        Truncated(content_type_), "', not application/grpc"));
  }
  absl::StatusOr<absl::StatusCode> code = ParseGrpcStatus(grpc_status_);
  if (!code.ok()) return code.status();
  if (*code != absl::StatusCode::kOk) {
    absl::Status status(*code, PercentDecodeGrpcMessage(grpc_message_));
    if (!grpc_status_details_.empty()) {
      absl::StatusOr<std::string> details = Base64Decode(grpc_status_details_);
      google::rpc::Status rpc_status;
      if (!details.ok() || !rpc_status.ParseFromString(*details)) {
        // Keep the server's code and message; say why the detail is lost.
        return absl::Status(
            status.code(),
            absl::StrCat(status.message(),
                         " [unreadable grpc-status-details-bin: ",
                         details.ok() ? "not a google.rpc.Status"
                                      : details.status().message(),
                         "]"));
      }
      const absl::Status from_details = StatusFromRpcStatusProto(*details);
      if (auto payload = from_details.GetPayload(kErrorDetailTypeUrl)) {
        status.SetPayload(kErrorDetailTypeUrl, absl::Cord(*payload));
      }
    }
    return status;
  }
  absl::StatusOr<absl::string_view> message = decoder_.Finish();
  if (!message.ok()) return message.status();
  *failure = Failure::kNone;
  *response_message = *message;
  return absl::OkStatus();
}

int Http2Connection::OnHeader(nghttp2_session* /*session*/,
                              const nghttp2_frame* frame, const uint8_t* name,
                              size_t namelen, const uint8_t* value,
                              size_t valuelen, uint8_t /*flags*/,
                              void* user_data) {
  auto* self = static_cast<Http2Connection*>(user_data);
  if (frame->hd.type != NGHTTP2_HEADERS ||
      frame->hd.stream_id != self->stream_id_) {
    return 0;
  }
  self->saw_headers_ = true;
  self->header_bytes_ += namelen + valuelen;
  if (self->header_bytes_ > kMaxResponseHeaderBytes) {
    if (self->response_error_.ok()) {
      self->response_error_ = absl::ResourceExhaustedError(
          absl::StrCat("response headers from hsmd at ", self->peer_name_,
                       " exceed ", kMaxResponseHeaderBytes, " bytes"));
    }
    // nghttp2 resets the stream.
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  const absl::string_view n(reinterpret_cast<const char*>(name), namelen);
  const absl::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (n == ":status") {
    int http_status = 0;
    for (char c : v) {
      if (c < '0' || c > '9' || http_status > 999) {
        http_status = -1;
        break;
      }
      http_status = http_status * 10 + (c - '0');
    }
    self->http_status_ = http_status;
  } else if (n == "content-type") {
    self->content_type_.assign(v.data(), v.size());
  } else if (n == "grpc-status") {
    self->has_grpc_status_ = true;
    self->grpc_status_.assign(v.data(), v.size());
  } else if (n == "grpc-message") {
    self->grpc_message_.assign(v.data(), v.size());
  } else if (n == "grpc-status-details-bin") {
    self->grpc_status_details_.assign(v.data(), v.size());
  }
  return 0;
}

int Http2Connection::OnDataChunk(nghttp2_session* session, uint8_t /*flags*/,
                                 int32_t stream_id, const uint8_t* data,
                                 size_t len, void* user_data) {
  auto* self = static_cast<Http2Connection*>(user_data);
  if (stream_id != self->stream_id_ || !self->response_error_.ok()) return 0;
  absl::Status status = self->decoder_.Feed(
      absl::string_view(reinterpret_cast<const char*>(data), len));
  if (!status.ok()) {
    self->response_error_ = std::move(status);
    // Stop the server sending the rest; the connection stays usable.
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id,
                              NGHTTP2_CANCEL);
  }
  return 0;
}

int Http2Connection::OnStreamClose(nghttp2_session* /*session*/,
                                   int32_t stream_id, uint32_t error_code,
                                   void* user_data) {
  auto* self = static_cast<Http2Connection*>(user_data);
  if (stream_id == self->stream_id_) {
    self->stream_closed_ = true;
    self->stream_error_code_ = error_code;
  }
  return 0;
}

int Http2Connection::OnFrameRecv(nghttp2_session* /*session*/,
                                 const nghttp2_frame* frame, void* user_data) {
  auto* self = static_cast<Http2Connection*>(user_data);
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      frame->hd.stream_id == self->stream_id_ &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
    self->remote_ended_ = true;
  }
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    // Streams above last_stream_id are closed by nghttp2 as REFUSED_STREAM;
    // ours, if below, still completes. No new calls go on this connection.
    self->goaway_received_ = true;
    if (frame->goaway.error_code != NGHTTP2_NO_ERROR) {
      self->last_nghttp2_error_ = absl::StrCat(
          "GOAWAY ", nghttp2_http2_strerror(frame->goaway.error_code), " ",
          Truncated(absl::string_view(
              reinterpret_cast<const char*>(frame->goaway.opaque_data),
              frame->goaway.opaque_data_len)));
    }
  }
  return 0;
}

int Http2Connection::OnError(nghttp2_session* /*session*/,
                             int /*lib_error_code*/, const char* msg,
                             size_t len, void* user_data) {
  auto* self = static_cast<Http2Connection*>(user_data);
  self->last_nghttp2_error_ = Truncated(absl::string_view(msg, len));
  return 0;
}

ssize_t Http2Connection::ReadRequestBody(nghttp2_session* /*session*/,
                                         int32_t stream_id, uint8_t* buf,
                                         size_t length, uint32_t* data_flags,
                                         nghttp2_data_source* source,
                                         void* /*user_data*/) {
  auto* self = static_cast<Http2Connection*>(source->ptr);
  if (stream_id != self->stream_id_) {
    // Cannot happen: streams are sequential and a stale one breaks the
    // connection. Fail the stream rather than send the wrong bytes.
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  const size_t take =
      std::min(length, self->request_body_.size() - self->request_offset_);
  std::memcpy(buf, self->request_body_.data() + self->request_offset_, take);
  self->request_offset_ += take;
  if (self->request_offset_ == self->request_body_.size()) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  }
  return static_cast<ssize_t>(take);
}

}  // namespace hsmd::client
