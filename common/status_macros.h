// Early-return helpers for absl::Status / absl::StatusOr.
#ifndef HSMD_COMMON_STATUS_MACROS_H_
#define HSMD_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define HSMD_STATUS_CONCAT_INNER_(a, b) a##b
#define HSMD_STATUS_CONCAT_(a, b) HSMD_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status _hsmd_status = (expr);        \
    if (!_hsmd_status.ok()) return _hsmd_status; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, F());` declares/assigns from a StatusOr or returns
// its error.
#define ASSIGN_OR_RETURN(lhs, expr)                                           \
  HSMD_ASSIGN_OR_RETURN_IMPL_(HSMD_STATUS_CONCAT_(_hsmd_statusor_, __LINE__), \
                              lhs, expr)

#define HSMD_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)   \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // HSMD_COMMON_STATUS_MACROS_H_
