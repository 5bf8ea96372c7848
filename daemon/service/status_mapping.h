// The one place where absl::Status becomes grpc::Status.
//
// The code and message carry over unchanged (gRPC and absl share the
// canonical code numbering); the binary details are the google.rpc.Status
// encoding of the whole status (common/error_detail.h), so an attached
// hsmd.v1.ErrorDetail (CK_RV name and number, failing function, key) reaches
// clients in the `grpc-status-details-bin` trailer.
#ifndef HSMD_DAEMON_SERVICE_STATUS_MAPPING_H_
#define HSMD_DAEMON_SERVICE_STATUS_MAPPING_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace hsmd::service {

grpc::Status ToGrpcStatus(const absl::Status& status);

// gRPC's name for a code ("NOT_FOUND"), as used in stats and logs.
const char* GrpcCodeName(absl::StatusCode code);

}  // namespace hsmd::service

#endif  // HSMD_DAEMON_SERVICE_STATUS_MAPPING_H_
