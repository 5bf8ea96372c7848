// The unary methods the fast path serves, by HTTP/2 :path, bound to the
// same service objects the gRPC server uses: both transports run the same
// validation, policy, audit, stats and backend code.
#ifndef HSMD_DAEMON_FAST_PATH_METHOD_TABLE_H_
#define HSMD_DAEMON_FAST_PATH_METHOD_TABLE_H_

#include <grpcpp/support/status.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "daemon/service/admin_service.h"
#include "daemon/service/key_service.h"
#include "daemon/service/request_scope.h"

namespace hsmd::fast_path {

// Parses the request message in `request`, runs the method, and on success
// writes the response as one gRPC length-prefixed message to `*response`.
using UnaryHandler = std::function<grpc::Status(
    const service::CallInfo& call, absl::string_view request,
    std::string* response)>;

class MethodTable {
 public:
  // Every method of hsmd.v1.KeyService and hsmd.v1.AdminService. Both
  // services must outlive the table.
  static MethodTable ForServices(service::KeyService* keys,
                                 service::AdminService* admin);

  // Serves `path` ("/package.Service/Method") with `handler`, replacing
  // what served it before (tests, fuzzers).
  void Add(std::string path, UnaryHandler handler);

  // Null for a path the table does not serve.
  const UnaryHandler* Find(absl::string_view path) const;
  std::vector<std::string> Paths() const;

 private:
  absl::flat_hash_map<std::string, UnaryHandler> handlers_;
};

}  // namespace hsmd::fast_path

#endif  // HSMD_DAEMON_FAST_PATH_METHOD_TABLE_H_
