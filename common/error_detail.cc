#include "common/error_detail.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_format.h"
#include "google/rpc/status.pb.h"

namespace hsmd {

void SetErrorDetail(absl::Status& status, const v1::ErrorDetail& detail) {
  if (status.ok()) return;
  status.SetPayload(kErrorDetailTypeUrl,
                    absl::Cord(detail.SerializeAsString()));
}

std::optional<v1::ErrorDetail> GetErrorDetail(const absl::Status& status) {
  auto payload = status.GetPayload(kErrorDetailTypeUrl);
  if (!payload.has_value()) return std::nullopt;
  v1::ErrorDetail detail;
  if (!detail.ParseFromString(std::string(*payload))) return std::nullopt;
  return detail;
}

std::string StatusToRpcStatusProto(const absl::Status& status) {
  google::rpc::Status rpc_status;
  rpc_status.set_code(static_cast<int>(status.code()));
  rpc_status.set_message(std::string(status.message()));
  if (auto payload = status.GetPayload(kErrorDetailTypeUrl)) {
    google::protobuf::Any* any = rpc_status.add_details();
    any->set_type_url(std::string(kErrorDetailTypeUrl));
    any->set_value(std::string(*payload));
  }
  return rpc_status.SerializeAsString();
}

absl::Status StatusFromRpcStatusProto(absl::string_view serialized) {
  google::rpc::Status rpc_status;
  if (!rpc_status.ParseFromArray(serialized.data(),
                                 static_cast<int>(serialized.size()))) {
    return absl::InternalError(
        "malformed grpc-status-details-bin: not a google.rpc.Status");
  }
  absl::Status status(static_cast<absl::StatusCode>(rpc_status.code()),
                      rpc_status.message());
  for (const google::protobuf::Any& any : rpc_status.details()) {
    if (any.type_url() == kErrorDetailTypeUrl) {
      status.SetPayload(kErrorDetailTypeUrl, absl::Cord(any.value()));
    }
  }
  return status;
}

std::string DescribeBackendCode(const absl::Status& status) {
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(status);
  if (!detail.has_value() || detail->backend_code_name().empty()) return "";
  return absl::StrFormat("%s (0x%x)", detail->backend_code_name(),
                         detail->backend_code());
}

}  // namespace hsmd
