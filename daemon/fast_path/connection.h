// One fast-path connection: unary gRPC calls over HTTP/2 (nghttp2's server
// session) on a connected Unix socket, served on the calling thread.
//
// client_lib makes one call at a time per connection, so the connection
// reads a request, runs it on this thread and writes the response: one
// wake-up of this thread per call, and no hand-over between threads. The
// socket is blocking; the owner ends Serve() from another thread with
// shutdown(2) on it.
//
// What a malformed or hostile client gets: nghttp2 answers protocol errors
// (GOAWAY, RST_STREAM); a request with a bad :method or content-type, an
// unknown path, a compressed or mis-framed message, or a body above the
// limit gets a gRPC status naming the problem; headers past the limit reset
// the stream. Nothing a client sends ends more than its own connection.
#ifndef HSMD_DAEMON_FAST_PATH_CONNECTION_H_
#define HSMD_DAEMON_FAST_PATH_CONNECTION_H_

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "daemon/fast_path/method_table.h"
#include "daemon/in_flight_calls.h"
#include "daemon/peer_credentials.h"

namespace hsmd::fast_path {

struct ConnectionOptions {
  // Largest request message (gRPC framing excluded).
  size_t max_request_bytes = 1 << 20;
  // SETTINGS_MAX_CONCURRENT_STREAMS; more open streams are refused.
  uint32_t max_concurrent_streams = 100;
  // Largest header block of one request.
  size_t max_header_bytes = 16 * 1024;
};

class Connection {
 public:
  // Borrows `fd` (the caller closes it after Serve returns); `methods` and
  // `in_flight` (may be null) must outlive the connection.
  Connection(int fd, std::shared_ptr<const PeerIdentity> peer,
             const MethodTable* methods, InFlightCalls* in_flight,
             ConnectionOptions options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Serves calls until the client closes the connection, an I/O or HTTP/2
  // protocol error, or a shutdown(2) of the socket. OK on an orderly end.
  absl::Status Serve();

  // Calls served so far (any outcome).
  uint64_t calls() const { return calls_; }

 private:
  struct Stream {
    int32_t id = 0;
    std::string method;
    std::string path;
    std::string content_type;
    std::string timeout;
    std::string encoding;
    size_t header_bytes = 0;
    std::string body;
    bool body_too_large = false;
    // The response: one framed message, sent by the data source, then the
    // trailers.
    std::string response;
    size_t response_offset = 0;
    std::string status_code;
    std::string status_message;
    std::string status_details;

    // Back to a fresh stream, keeping the strings' capacity.
    void Reset() {
      id = 0;
      for (std::string* s :
           {&method, &path, &content_type, &timeout, &encoding, &body,
            &response, &status_code, &status_message, &status_details}) {
        s->clear();
      }
      header_bytes = 0;
      body_too_large = false;
      response_offset = 0;
    }
  };

  absl::Status Init();
  // Runs the completed request on `stream_id` and sends its response.
  absl::Status Dispatch(int32_t stream_id);
  grpc::Status RunCall(Stream& stream);
  // Queues a response: a message with OK trailers, or trailers only.
  void Respond(Stream& stream, const grpc::Status& status);
  // Moves nghttp2's output to the socket.
  absl::Status Flush();

  static int OnBeginHeaders(nghttp2_session* session,
                            const nghttp2_frame* frame, void* user_data);
  static int OnHeader(nghttp2_session* session, const nghttp2_frame* frame,
                      const uint8_t* name, size_t namelen, const uint8_t* value,
                      size_t valuelen, uint8_t flags, void* user_data);
  static int OnDataChunk(nghttp2_session* session, uint8_t flags,
                         int32_t stream_id, const uint8_t* data, size_t len,
                         void* user_data);
  static int OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame,
                         void* user_data);
  static int OnStreamClose(nghttp2_session* session, int32_t stream_id,
                           uint32_t error_code, void* user_data);
  static ssize_t ReadResponse(nghttp2_session* session, int32_t stream_id,
                              uint8_t* buf, size_t length, uint32_t* data_flags,
                              nghttp2_data_source* source, void* user_data);

  const int fd_;
  const std::shared_ptr<const PeerIdentity> peer_;
  const MethodTable* const methods_;
  InFlightCalls* const in_flight_;
  const ConnectionOptions options_;
  nghttp2_session* session_ = nullptr;
  absl::flat_hash_map<int32_t, std::unique_ptr<Stream>> streams_;
  // Streams whose request is complete, in arrival order.
  std::deque<int32_t> ready_;
  // A closed stream kept for the next call.
  std::unique_ptr<Stream> spare_;
  std::unique_ptr<char[]> in_buffer_;
  std::string out_buffer_;
  uint64_t calls_ = 0;
};

// Parses a grpc-timeout header value ("100m", "5S", ...): up to 8 digits and
// a unit of H, M, S, m (ms), u (µs) or n (ns). Nullopt if malformed.
std::optional<absl::Duration> ParseGrpcTimeout(absl::string_view value);

// gRPC's percent-encoding of grpc-message values.
std::string PercentEncode(absl::string_view message);

}  // namespace hsmd::fast_path

#endif  // HSMD_DAEMON_FAST_PATH_CONNECTION_H_
