// OpenSSL's return conventions for the results of an operation context's
// methods: 1 (or the value) on success; on failure the status is raised on
// OpenSSL's error queue through the context's provider, and 0 returned.
// Used by the C edge of every operation family (signature, asym_cipher,
// keyexch, ...); `Context` has `ProviderContext* provider() const`.
#ifndef HSMD_PROXY_PROVIDER_REPORT_H_
#define HSMD_PROXY_PROVIDER_REPORT_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proxy_provider/provider_context.h"

namespace hsmd::proxy {

template <typename Context>
int Report(Context* ctx, const absl::Status& status) {
  if (status.ok()) return 1;
  HSMPROXY_RAISE(ctx->provider(), status);
  return 0;
}

// Stores a produced length (signature, plaintext, secret) in `*length`.
template <typename Context>
int ReportSize(Context* ctx, const absl::StatusOr<size_t>& result,
               size_t* length) {
  if (!result.ok()) return Report(ctx, result.status());
  *length = *result;
  return 1;
}

// A verification: 1 valid, 0 invalid or failed (failures also raised).
template <typename Context>
int ReportVerify(Context* ctx, const absl::StatusOr<bool>& result) {
  if (!result.ok()) return Report(ctx, result.status());
  return *result ? 1 : 0;
}

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_REPORT_H_
