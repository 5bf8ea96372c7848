// One HTTP/2 connection to hsmd over a Unix stream socket, carrying unary gRPC
// calls one at a time (sequential streams) on the calling thread.
//
// The socket stays in blocking mode but every send/recv uses MSG_DONTWAIT and
// every wait is a poll() bounded by the call's deadline, so nothing blocks
// past it. Sends use MSG_NOSIGNAL: a dead daemon never raises SIGPIPE. The
// object is not thread-safe; the Client's pool hands it to one caller at a
// time.
#ifndef HSMD_CLIENT_LIB_HTTP2_CONNECTION_H_
#define HSMD_CLIENT_LIB_HTTP2_CONNECTION_H_

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client_lib/grpc_framing.h"

namespace hsmd::client {

// When a call must end: a point on the monotonic clock (immune to wall-clock
// steps), plus the timeout it was derived from for error messages.
class Deadline {
 public:
  static Deadline After(absl::Duration timeout);
  // The earlier of `this` and now + `timeout`.
  Deadline CappedAt(absl::Duration timeout) const;

  absl::Duration Remaining() const;
  bool Expired() const { return Remaining() <= absl::ZeroDuration(); }
  absl::Duration timeout() const { return timeout_; }

 private:
  Deadline(int64_t at_nanos, absl::Duration timeout)
      : at_nanos_(at_nanos), timeout_(timeout) {}

  int64_t at_nanos_;
  absl::Duration timeout_;
};

class Http2Connection {
 public:
  // Why a call failed, for the caller's retry decision.
  enum class Failure {
    kNone,
    // Nothing of this call reached the socket (e.g. the peer had already
    // closed the connection): the request was certainly not processed.
    kNotSent,
    // The server refused the stream (REFUSED_STREAM, or GOAWAY with a
    // last_stream_id below ours): it was not processed.
    kRefused,
    // Anything else: the request may have been processed.
    kOther,
  };

  // Connects to the Unix socket at `socket_path` (bounded by `deadline`) and
  // queues the HTTP/2 preface and SETTINGS; they leave with the first call, so
  // connecting costs no extra round trip. UNAVAILABLE "hsmd unavailable at
  // PATH: connection refused" and the like on failure.
  // `announce_fast_path`: ask hsmd to serve the connection on its fast path
  // (common/fast_path.h); without it hsmd's gRPC server serves it.
  static absl::StatusOr<std::unique_ptr<Http2Connection>> Connect(
      absl::string_view socket_path, const Deadline& deadline,
      size_t max_response_bytes, bool announce_fast_path = true);

  // Takes ownership of an already connected stream socket (e.g. one end of a
  // socketpair: tests and fuzzers feed raw server bytes through the other
  // end). `peer_name` names the server in error messages.
  static absl::StatusOr<std::unique_ptr<Http2Connection>> FromConnectedSocket(
      int fd, absl::string_view peer_name, size_t max_response_bytes,
      bool announce_fast_path = true);

  ~Http2Connection();
  Http2Connection(const Http2Connection&) = delete;
  Http2Connection& operator=(const Http2Connection&) = delete;

  // Runs one unary call: `path` is "/package.Service/Method",
  // `framed_request` the gRPC length-prefixed request message. On success
  // `*response_message` points into a buffer owned by this connection, valid
  // until the next call on it. The status carries the server's grpc-status,
  // decoded grpc-message and (as payload) the ErrorDetail from
  // grpc-status-details-bin; transport problems are UNAVAILABLE, a missed
  // deadline DEADLINE_EXCEEDED (the connection is then unusable).
  absl::Status Call(absl::string_view path, absl::string_view framed_request,
                    const Deadline& deadline,
                    absl::string_view* response_message, Failure* failure);

  // For a pooled connection about to be reused: processes, without blocking,
  // whatever the server sent while it was idle (GOAWAY, PING, SETTINGS, EOF).
  // Returns whether the connection can still carry a call.
  bool CheckIdle();

  // False after EOF, a socket or protocol error, a GOAWAY or a missed
  // deadline: the connection must then be destroyed.
  bool usable() const;

  int fd() const { return fd_; }

  // Scratch space for the caller to build `framed_request` in, reused across
  // calls so steady-state calls do not allocate.
  std::string& request_buffer() { return request_buffer_; }

  // Frees buffers that a large call grew (called when the connection goes
  // back to the pool).
  void TrimBuffers();

 private:
  Http2Connection(int fd, std::string peer_name, size_t max_response_bytes);
  absl::Status Init(bool announce_fast_path);

  // Moves nghttp2's pending output to the socket until done or it would
  // block.
  absl::Status PumpOutput();
  bool OutputPending() const { return out_offset_ < out_buffer_.size(); }
  // Reads what is available without blocking and feeds it to nghttp2.
  // Records EOF / errors in the connection state.
  void ReadInput();
  void ResetCallState();
  absl::Status StatusFromResponse(absl::string_view path,
                                  absl::string_view* response_message,
                                  Failure* failure);
  absl::Status Unavailable(absl::string_view what) const;
  absl::Status SocketError(absl::string_view operation, int err) const;

  static int OnHeader(nghttp2_session* session, const nghttp2_frame* frame,
                      const uint8_t* name, size_t namelen, const uint8_t* value,
                      size_t valuelen, uint8_t flags, void* user_data);
  static int OnDataChunk(nghttp2_session* session, uint8_t flags,
                         int32_t stream_id, const uint8_t* data, size_t len,
                         void* user_data);
  static int OnStreamClose(nghttp2_session* session, int32_t stream_id,
                           uint32_t error_code, void* user_data);
  static int OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame,
                         void* user_data);
  static int OnError(nghttp2_session* session, int lib_error_code,
                     const char* msg, size_t len, void* user_data);
  static ssize_t ReadRequestBody(nghttp2_session* session, int32_t stream_id,
                                 uint8_t* buf, size_t length,
                                 uint32_t* data_flags,
                                 nghttp2_data_source* source, void* user_data);

  int fd_;
  const std::string peer_name_;
  const size_t max_response_bytes_;
  nghttp2_session* session_ = nullptr;

  // Connection state.
  bool peer_closed_ = false;
  bool broken_ = false;
  bool goaway_received_ = false;
  absl::Status transport_error_;
  std::string last_nghttp2_error_;

  // Reused buffers.
  std::string request_buffer_;
  std::string out_buffer_;
  size_t out_offset_ = 0;
  std::unique_ptr<char[]> in_buffer_;
  GrpcMessageDecoder decoder_;

  // State of the call in progress.
  int32_t stream_id_ = -1;
  absl::string_view request_body_;
  size_t request_offset_ = 0;
  size_t bytes_sent_this_call_ = 0;
  bool stream_closed_ = false;
  // The server's END_STREAM arrived: the response is complete.
  bool remote_ended_ = false;
  uint32_t stream_error_code_ = 0;
  bool saw_headers_ = false;
  int http_status_ = 0;
  bool has_grpc_status_ = false;
  size_t header_bytes_ = 0;
  std::string content_type_;
  std::string grpc_status_;
  std::string grpc_message_;
  std::string grpc_status_details_;
  // A failure detected while processing the response (too large,
  // compressed, oversized headers); the stream is reset.
  absl::Status response_error_;
};

}  // namespace hsmd::client

#endif  // HSMD_CLIENT_LIB_HTTP2_CONNECTION_H_
