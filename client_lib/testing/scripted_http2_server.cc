#include "client_lib/testing/scripted_http2_server.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client_lib/grpc_framing.h"

namespace hsmd::client::testing {
namespace {

// HPACK integer with a 7-bit prefix (RFC 7541 section 5.1), high bit clear.
std::string HpackInt(size_t v) {
  std::string out;
  if (v < 127) {
    out.push_back(static_cast<char>(v));
    return out;
  }
  out.push_back(127);
  v -= 127;
  while (v >= 128) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

void WriteAll(int fd, absl::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

// Decodes one header block; false if it is not valid HPACK.
bool Inflate(nghttp2_hd_inflater* inflater, absl::string_view block,
             std::map<std::string, std::string>* out) {
  auto* in = reinterpret_cast<const uint8_t*>(block.data());
  size_t left = block.size();
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    const ssize_t rv = nghttp2_hd_inflate_hd2(inflater, &nv, &flags, in, left,
                                              /*in_final=*/1);
    if (rv < 0) return false;
    in += rv;
    left -= static_cast<size_t>(rv);
    if (flags & NGHTTP2_HD_INFLATE_EMIT) {
      (*out)[std::string(reinterpret_cast<char*>(nv.name), nv.namelen)] =
          std::string(reinterpret_cast<char*>(nv.value), nv.valuelen);
    }
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inflater);
      return true;
    }
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) == 0 && left == 0) return true;
  }
}

}  // namespace

std::string BigEndian32(uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string Http2Frame(uint8_t type, uint8_t flags, uint32_t stream,
                       absl::string_view payload) {
  std::string out =
      BigEndian32(static_cast<uint32_t>(payload.size())).substr(1);
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(flags));
  out += BigEndian32(stream);
  out.append(payload.data(), payload.size());
  return out;
}

std::string HeadersFrame(uint32_t stream, const HeaderFields& fields,
                         bool end_stream) {
  std::string block;
  for (const auto& [name, value] : fields) {
    block.push_back(0);  // Literal without indexing, new name.
    block += HpackInt(name.size()) + name + HpackInt(value.size()) + value;
  }
  return Http2Frame(kFrameHeaders,
                    kFlagEndHeaders | (end_stream ? kFlagEndStream : 0), stream,
                    block);
}

std::string DataFrame(uint32_t stream, absl::string_view payload,
                      bool end_stream) {
  return Http2Frame(kFrameData, end_stream ? kFlagEndStream : 0, stream,
                    payload);
}

const HeaderFields& GrpcResponseHeaders() {
  static const HeaderFields* const fields = new HeaderFields{
      {":status", "200"}, {"content-type", "application/grpc"}};
  return *fields;
}

std::string OkGrpcResponse(uint32_t stream, absl::string_view message) {
  return HeadersFrame(stream, GrpcResponseHeaders(), false) +
         DataFrame(stream, EncodeGrpcMessage(message).value(), false) +
         HeadersFrame(stream, {{"grpc-status", "0"}}, true);
}

std::string TrailersOnlyResponse(uint32_t stream, const HeaderFields& fields) {
  HeaderFields all = GrpcResponseHeaders();
  all.insert(all.end(), fields.begin(), fields.end());
  return HeadersFrame(stream, all, true);
}

std::unique_ptr<ScriptedHttp2Server> ScriptedHttp2Server::OverSocketpair(
    Script script, Options options) {
  std::unique_ptr<ScriptedHttp2Server> server(
      new ScriptedHttp2Server(std::move(script), options));
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return nullptr;
  }
  server->client_fd_ = fds[0];
  ScriptedHttp2Server* self = server.get();
  const int server_end = fds[1];  // Owned by ServeConnection.
  server->thread_ =
      std::thread([self, server_end] { self->ServeConnection(server_end, 0); });
  return server;
}

absl::StatusOr<std::unique_ptr<ScriptedHttp2Server>>
ScriptedHttp2Server::Listen(const std::string& socket_path, Script script,
                            Options options) {
  std::unique_ptr<ScriptedHttp2Server> server(
      new ScriptedHttp2Server(std::move(script), options));
  sockaddr_un addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError("socket path too long");
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(strerror(errno));
  unlink(socket_path.c_str());
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 16) != 0) {
    const int err = errno;
    close(fd);
    return absl::InternalError(
        absl::StrCat("bind/listen ", socket_path, ": ", strerror(err)));
  }
  server->listen_fd_ = fd;
  server->socket_path_ = socket_path;
  ScriptedHttp2Server* self = server.get();
  server->thread_ = std::thread([self] { self->AcceptLoop(); });
  return server;
}

ScriptedHttp2Server::~ScriptedHttp2Server() {
  Stop();
  if (client_fd_ >= 0) close(client_fd_);
}

int ScriptedHttp2Server::TakeClientFd() {
  const int fd = client_fd_;
  client_fd_ = -1;
  return fd;
}

std::vector<ScriptedRequest> ScriptedHttp2Server::requests() {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

void ScriptedHttp2Server::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
  for (int fd : lingering_fds_) close(fd);
  lingering_fds_.clear();
  if (!socket_path_.empty()) unlink(socket_path_.c_str());
  socket_path_.clear();
}

void ScriptedHttp2Server::AcceptLoop() {
  for (int connection = 0; !stop_;) {
    pollfd pfd = {listen_fd_, POLLIN, 0};
    if (poll(&pfd, 1, 20) <= 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ServeConnection(fd, connection++);
  }
}

void ScriptedHttp2Server::ServeConnection(int fd, int connection) {
  nghttp2_hd_inflater* inflater = nullptr;
  if (nghttp2_hd_inflate_new(&inflater) != 0) {
    close(fd);
    return;
  }
  std::map<uint32_t, ScriptedRequest> open;
  std::string in;
  bool preface_seen = false;
  bool linger = false;
  WriteAll(fd, Http2Frame(kFrameSettings, 0, 0, ""));

  // Runs the script; false once the connection is to be closed.
  const auto respond = [&](const ScriptedRequest& request) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(request);
    }
    ScriptedReply reply = script_(request);
    WriteAll(fd, reply.bytes);
    if (reply.stop_reading_after) {
      shutdown(fd, SHUT_RD);
      linger = true;
      return false;
    }
    if (reply.close_after) {
      shutdown(fd, SHUT_RDWR);
      return false;
    }
    return true;
  };
  // Handles one client frame; false once the connection is to be closed.
  const auto on_frame = [&](uint8_t type, uint8_t flags, uint32_t stream,
                            absl::string_view payload) {
    if (type == kFrameHeaders) {
      size_t offset = 0, pad = 0;
      if ((flags & kFlagPadded) && !payload.empty()) {
        pad = static_cast<uint8_t>(payload[offset++]);
      }
      if (flags & kFlagPriority) offset += 5;
      if (offset + pad > payload.size()) return false;
      ScriptedRequest& request = open[stream];
      request.connection = connection;
      request.stream = stream;
      if (!Inflate(inflater,
                   payload.substr(offset, payload.size() - offset - pad),
                   &request.headers)) {
        return false;
      }
      if (options_.respond_on_headers) return respond(request);
    } else if (type == kFrameData) {
      open[stream].body.append(payload.data(), payload.size());
      if (options_.grant_flow_control && !payload.empty()) {
        const std::string increment =
            BigEndian32(static_cast<uint32_t>(payload.size()));
        WriteAll(fd, Http2Frame(kFrameWindowUpdate, 0, 0, increment) +
                         Http2Frame(kFrameWindowUpdate, 0, stream, increment));
      }
    }
    if ((type == kFrameHeaders || type == kFrameData) &&
        (flags & kFlagEndStream) && !options_.respond_on_headers) {
      return respond(open[stream]);
    }
    return true;
  };

  while (!stop_) {
    pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, 20) <= 0) continue;
    char buf[65536];
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
    if (!preface_seen) {
      if (in.size() < NGHTTP2_CLIENT_MAGIC_LEN) continue;
      if (in.compare(0, NGHTTP2_CLIENT_MAGIC_LEN, NGHTTP2_CLIENT_MAGIC) != 0) {
        break;
      }
      in.erase(0, NGHTTP2_CLIENT_MAGIC_LEN);
      preface_seen = true;
    }
    bool keep_going = true;
    while (keep_going && in.size() >= 9) {
      const auto byte = [&in](size_t i) {
        return static_cast<uint32_t>(static_cast<uint8_t>(in[i]));
      };
      const size_t length = (byte(0) << 16) | (byte(1) << 8) | byte(2);
      if (in.size() < 9 + length) break;
      const uint32_t stream =
          ((byte(5) & 0x7f) << 24) | (byte(6) << 16) | (byte(7) << 8) | byte(8);
      keep_going =
          on_frame(static_cast<uint8_t>(byte(3)), static_cast<uint8_t>(byte(4)),
                   stream, absl::string_view(in).substr(9, length));
      in.erase(0, 9 + length);
    }
    if (!keep_going) break;
  }
  nghttp2_hd_inflate_del(inflater);
  if (linger) {
    lingering_fds_.push_back(fd);  // Only this thread adds; Stop() joins first.
  } else {
    close(fd);
  }
  ++connections_done_;
}

}  // namespace hsmd::client::testing
