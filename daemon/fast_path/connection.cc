#include "daemon/fast_path/connection.h"

#include <errno.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/http2_settings.h"
#include "daemon/logging.h"

namespace hsmd::fast_path {
namespace {

constexpr size_t kReadBytes = 64 * 1024;
constexpr size_t kGrpcPrefixBytes = 5;

nghttp2_nv Nv(absl::string_view name, absl::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())),
          name.size(), value.size(),
          NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
}

grpc::Status Error(grpc::StatusCode code, std::string message) {
  return grpc::Status(code, std::move(message));
}

}  // namespace

std::optional<absl::Duration> ParseGrpcTimeout(absl::string_view value) {
  if (value.size() < 2 || value.size() > 9) return std::nullopt;
  const absl::string_view digits = value.substr(0, value.size() - 1);
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return std::nullopt;
    }
  }
  int64_t n = 0;
  if (!absl::SimpleAtoi(digits, &n)) return std::nullopt;
  switch (value.back()) {
    case 'H':
      return absl::Hours(n);
    case 'M':
      return absl::Minutes(n);
    case 'S':
      return absl::Seconds(n);
    case 'm':
      return absl::Milliseconds(n);
    case 'u':
      return absl::Microseconds(n);
    case 'n':
      return absl::Nanoseconds(n);
    default:
      return std::nullopt;
  }
}

std::string PercentEncode(absl::string_view message) {
  std::string out;
  out.reserve(message.size());
  for (unsigned char c : message) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

Connection::Connection(int fd, std::shared_ptr<const PeerIdentity> peer,
                       const MethodTable* methods, InFlightCalls* in_flight,
                       ConnectionOptions options)
    : fd_(fd),
      peer_(std::move(peer)),
      methods_(methods),
      in_flight_(in_flight),
      options_(options),
      in_buffer_(new char[kReadBytes]) {}

Connection::~Connection() {
  if (session_ != nullptr) nghttp2_session_del(session_);
}

absl::Status Connection::Init() {
  nghttp2_session_callbacks* callbacks = nullptr;
  if (nghttp2_session_callbacks_new(&callbacks) != 0) {
    return absl::ResourceExhaustedError("cannot allocate nghttp2 callbacks");
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks,
                                                          &OnBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, &OnHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks,
                                                            &OnDataChunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &OnFrameRecv);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks,
                                                         &OnStreamClose);
  const int rv = nghttp2_session_server_new(&session_, callbacks, this);
  nghttp2_session_callbacks_del(callbacks);
  if (rv != 0) {
    session_ = nullptr;
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot create an HTTP/2 session: ", nghttp2_strerror(rv)));
  }
  const uint32_t window = WindowFor(options_.max_request_bytes);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, options_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       static_cast<uint32_t>(options_.max_header_bytes)},
  };
  return SubmitOpeningSettings(session_, settings, window);
}

absl::Status Connection::Serve() {
  if (absl::Status s = Init(); !s.ok()) return s;
  // Our SETTINGS wait for the first response: sent on their own, they would
  // wake the client once more before its first call completes (a forked
  // child's first signature).
  bool first = true;
  for (;;) {
    if (!first) {
      if (absl::Status s = Flush(); !s.ok()) return s;
    }
    first = false;
    if (nghttp2_session_want_read(session_) == 0 &&
        nghttp2_session_want_write(session_) == 0) {
      return absl::OkStatus();
    }
    const ssize_t n = recv(fd_, in_buffer_.get(), kReadBytes, 0);
    if (n == 0) return absl::OkStatus();
    if (n < 0) {
      if (errno == EINTR) continue;
      // ECONNRESET and the like: the client went away.
      return absl::UnavailableError(
          absl::StrCat("read: ", std::strerror(errno)));
    }
    const ssize_t used = nghttp2_session_mem_recv(
        session_, reinterpret_cast<const uint8_t*>(in_buffer_.get()),
        static_cast<size_t>(n));
    if (used < 0) {
      // nghttp2 has queued a GOAWAY for protocol errors: try to send it.
      (void)Flush();
      return absl::InvalidArgumentError(absl::StrCat(
          "HTTP/2 protocol error: ", nghttp2_strerror(static_cast<int>(used))));
    }
    while (!ready_.empty()) {
      const int32_t id = ready_.front();
      ready_.pop_front();
      if (absl::Status s = Dispatch(id); !s.ok()) return s;
    }
  }
}

absl::Status Connection::Flush() {
  out_buffer_.clear();
  for (;;) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      return absl::InternalError(absl::StrCat(
          "HTTP/2 send: ", nghttp2_strerror(static_cast<int>(n))));
    }
    if (n == 0) break;
    out_buffer_.append(reinterpret_cast<const char*>(data),
                       static_cast<size_t>(n));
  }
  size_t offset = 0;
  while (offset < out_buffer_.size()) {
    const ssize_t n = send(fd_, out_buffer_.data() + offset,
                           out_buffer_.size() - offset, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(
          absl::StrCat("write: ", std::strerror(errno)));
    }
    offset += static_cast<size_t>(n);
  }
  if (out_buffer_.capacity() > 4 * kReadBytes) {
    std::string().swap(out_buffer_);
  }
  return absl::OkStatus();
}

absl::Status Connection::Dispatch(int32_t stream_id) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return absl::OkStatus();  // Reset meanwhile.
  Stream& stream = *it->second;
  ++calls_;
  // In flight until the response has left: a shutdown that waits for the
  // calls to finish must not close the connection under an unsent answer.
  if (in_flight_ != nullptr) in_flight_->Add();
  const grpc::Status status = RunCall(stream);
  Respond(stream, status);
  absl::Status sent = Flush();
  if (in_flight_ != nullptr) in_flight_->Done();
  return sent;
}

grpc::Status Connection::RunCall(Stream& stream) {
  if (stream.method != "POST") {
    return Error(grpc::StatusCode::INVALID_ARGUMENT,
                 absl::StrCat("HTTP method '", stream.method,
                              "' for a gRPC call; only POST is served"));
  }
  if (!absl::StartsWith(stream.content_type, "application/grpc")) {
    return Error(grpc::StatusCode::INVALID_ARGUMENT,
                 absl::StrCat("content-type '", stream.content_type,
                              "' is not application/grpc"));
  }
  const UnaryHandler* handler = methods_->Find(stream.path);
  if (handler == nullptr) {
    return Error(grpc::StatusCode::UNIMPLEMENTED,
                 absl::StrCat("unknown method ", stream.path));
  }
  if (stream.body_too_large) {
    return Error(grpc::StatusCode::RESOURCE_EXHAUSTED,
                 absl::StrCat("request message larger than the limit of ",
                              options_.max_request_bytes,
                              " bytes (limits.max_message_bytes)"));
  }
  const std::string& body = stream.body;
  if (body.size() < kGrpcPrefixBytes) {
    return Error(grpc::StatusCode::INVALID_ARGUMENT,
                 "the request carries no gRPC message (a unary call sends "
                 "exactly one)");
  }
  const auto* prefix = reinterpret_cast<const unsigned char*>(body.data());
  const size_t length = (size_t{prefix[1]} << 24) | (size_t{prefix[2]} << 16) |
                        (size_t{prefix[3]} << 8) | size_t{prefix[4]};
  if (prefix[0] != 0) {
    return Error(grpc::StatusCode::UNIMPLEMENTED,
                 absl::StrCat("compressed request (grpc-encoding '",
                              stream.encoding,
                              "'); hsmd accepts uncompressed messages only"));
  }
  if (length != body.size() - kGrpcPrefixBytes) {
    return Error(grpc::StatusCode::INVALID_ARGUMENT,
                 absl::StrCat("malformed gRPC framing: the prefix announces ",
                              length, " bytes but ",
                              body.size() - kGrpcPrefixBytes,
                              " follow (a unary call sends exactly one "
                              "message)"));
  }
  service::CallInfo call;
  call.peer = peer_;
  if (!stream.timeout.empty()) {
    std::optional<absl::Duration> timeout = ParseGrpcTimeout(stream.timeout);
    if (!timeout.has_value()) {
      return Error(grpc::StatusCode::INVALID_ARGUMENT,
                   absl::StrCat("malformed grpc-timeout '", stream.timeout,
                                "'"));
    }
    call.deadline = absl::Now() + *timeout;
  }
  grpc::Status status = (*handler)(
      call, absl::string_view(body).substr(kGrpcPrefixBytes), &stream.response);
  // The request is not needed any more; a large one should not linger.
  if (stream.body.capacity() > kReadBytes) std::string().swap(stream.body);
  return status;
}

void Connection::Respond(Stream& stream, const grpc::Status& status) {
  stream.status_code = absl::StrCat(static_cast<int>(status.error_code()));
  if (!status.ok()) {
    stream.status_message = PercentEncode(status.error_message());
    if (!status.error_details().empty()) {
      stream.status_details = absl::Base64Escape(status.error_details());
      // gRPC sends binary headers unpadded.
      while (!stream.status_details.empty() &&
             stream.status_details.back() == '=') {
        stream.status_details.pop_back();
      }
    }
    nghttp2_nv headers[5] = {
        Nv(":status", "200"),
        Nv("content-type", "application/grpc"),
        Nv("grpc-status", stream.status_code),
        Nv("grpc-message", stream.status_message),
        Nv("grpc-status-details-bin", stream.status_details),
    };
    const size_t n = stream.status_details.empty() ? 4 : 5;
    // Trailers-only: one HEADERS frame that ends the stream.
    (void)nghttp2_submit_response(session_, stream.id, headers, n, nullptr);
    return;
  }
  nghttp2_nv headers[2] = {Nv(":status", "200"),
                           Nv("content-type", "application/grpc")};
  nghttp2_data_provider provider;
  provider.source.ptr = &stream;
  provider.read_callback = &ReadResponse;
  (void)nghttp2_submit_response(session_, stream.id, headers, 2, &provider);
}

ssize_t Connection::ReadResponse(nghttp2_session* session, int32_t stream_id,
                                 uint8_t* buf, size_t length,
                                 uint32_t* data_flags,
                                 nghttp2_data_source* source,
                                 void* /*user_data*/) {
  Stream& stream = *static_cast<Stream*>(source->ptr);
  const size_t n =
      std::min(length, stream.response.size() - stream.response_offset);
  std::memcpy(buf, stream.response.data() + stream.response_offset, n);
  stream.response_offset += n;
  if (stream.response_offset == stream.response.size()) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    nghttp2_nv trailers[1] = {Nv("grpc-status", stream.status_code)};
    if (nghttp2_submit_trailer(session, stream_id, trailers, 1) != 0) {
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
  }
  return static_cast<ssize_t>(n);
}

int Connection::OnBeginHeaders(nghttp2_session* /*session*/,
                               const nghttp2_frame* frame, void* user_data) {
  auto* self = static_cast<Connection*>(user_data);
  if (frame->hd.type != NGHTTP2_HEADERS ||
      frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    return 0;
  }
  std::unique_ptr<Stream> stream;
  if (self->spare_ != nullptr) {
    // Calls come one at a time: the last call's stream, with its buffers'
    // capacity, serves the next one.
    stream = std::move(self->spare_);
    stream->Reset();
  } else {
    stream = std::make_unique<Stream>();
  }
  stream->id = frame->hd.stream_id;
  self->streams_[frame->hd.stream_id] = std::move(stream);
  return 0;
}

int Connection::OnHeader(nghttp2_session* /*session*/,
                         const nghttp2_frame* frame, const uint8_t* name,
                         size_t namelen, const uint8_t* value, size_t valuelen,
                         uint8_t /*flags*/, void* user_data) {
  auto* self = static_cast<Connection*>(user_data);
  auto it = self->streams_.find(frame->hd.stream_id);
  // Trailers from the client, or a stream already given up on.
  if (it == self->streams_.end()) return 0;
  Stream& stream = *it->second;
  stream.header_bytes += namelen + valuelen + 32;
  if (stream.header_bytes > self->options_.max_header_bytes) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // Resets the stream.
  }
  const absl::string_view n(reinterpret_cast<const char*>(name), namelen);
  const absl::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (n == ":path") {
    stream.path = std::string(v);
  } else if (n == ":method") {
    stream.method = std::string(v);
  } else if (n == "content-type") {
    stream.content_type = std::string(v);
  } else if (n == "grpc-timeout") {
    stream.timeout = std::string(v);
  } else if (n == "grpc-encoding") {
    stream.encoding = std::string(v);
  }
  return 0;
}

int Connection::OnDataChunk(nghttp2_session* /*session*/, uint8_t /*flags*/,
                            int32_t stream_id, const uint8_t* data, size_t len,
                            void* user_data) {
  auto* self = static_cast<Connection*>(user_data);
  auto it = self->streams_.find(stream_id);
  if (it == self->streams_.end()) return 0;
  Stream& stream = *it->second;
  if (stream.body_too_large) return 0;
  if (stream.body.size() + len >
      self->options_.max_request_bytes + kGrpcPrefixBytes) {
    stream.body_too_large = true;
    std::string().swap(stream.body);
    return 0;
  }
  stream.body.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int Connection::OnFrameRecv(nghttp2_session* /*session*/,
                            const nghttp2_frame* frame, void* user_data) {
  auto* self = static_cast<Connection*>(user_data);
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 &&
      self->streams_.contains(frame->hd.stream_id)) {
    self->ready_.push_back(frame->hd.stream_id);
  }
  return 0;
}

int Connection::OnStreamClose(nghttp2_session* /*session*/, int32_t stream_id,
                              uint32_t /*error_code*/, void* user_data) {
  auto* self = static_cast<Connection*>(user_data);
  auto it = self->streams_.find(stream_id);
  if (it == self->streams_.end()) return 0;
  // Kept unless it grew large (a big request or response).
  if (it->second->body.capacity() + it->second->response.capacity() <=
      kReadBytes) {
    self->spare_ = std::move(it->second);
  }
  self->streams_.erase(it);
  return 0;
}

}  // namespace hsmd::fast_path
