// Small helpers around PKCS#11 object calls: attribute templates, object
// search and attribute reads with the two-call size pattern.
#ifndef HSMD_DAEMON_BACKEND_PKCS11_OBJECTS_H_
#define HSMD_DAEMON_BACKEND_PKCS11_OBJECTS_H_

#include <p11-kit/pkcs11.h>

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hsmd::backend::pkcs11 {

// An attribute template that owns its values (pointers stay valid while the
// template lives).
class AttributeTemplate {
 public:
  AttributeTemplate() = default;
  AttributeTemplate(const AttributeTemplate&) = delete;
  AttributeTemplate& operator=(const AttributeTemplate&) = delete;

  AttributeTemplate& AddUlong(CK_ATTRIBUTE_TYPE type, CK_ULONG value);
  AttributeTemplate& AddBool(CK_ATTRIBUTE_TYPE type, bool value);
  AttributeTemplate& AddBytes(CK_ATTRIBUTE_TYPE type, absl::string_view value);

  CK_ATTRIBUTE* data() { return attributes_.data(); }
  CK_ULONG size() const { return attributes_.size(); }

 private:
  std::deque<std::string> values_;
  std::vector<CK_ATTRIBUTE> attributes_;
};

// Objects matching `tmpl`; FAILED_PRECONDITION if more than `limit` match.
absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindObjects(
    CK_FUNCTION_LIST* fns, CK_SESSION_HANDLE session, AttributeTemplate& tmpl,
    size_t limit);

// Attribute reads. std::nullopt when the object has no such attribute (or it
// is sensitive); an error status (with the CK_RV) when the call fails, e.g.
// CKR_OBJECT_HANDLE_INVALID for a stale handle.
absl::StatusOr<std::optional<std::string>> GetBytesAttribute(
    CK_FUNCTION_LIST* fns, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
    CK_ATTRIBUTE_TYPE type);
absl::StatusOr<std::optional<CK_ULONG>> GetUlongAttribute(
    CK_FUNCTION_LIST* fns, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
    CK_ATTRIBUTE_TYPE type);
absl::StatusOr<std::optional<bool>> GetBoolAttribute(CK_FUNCTION_LIST* fns,
                                                     CK_SESSION_HANDLE session,
                                                     CK_OBJECT_HANDLE object,
                                                     CK_ATTRIBUTE_TYPE type);

}  // namespace hsmd::backend::pkcs11

#endif  // HSMD_DAEMON_BACKEND_PKCS11_OBJECTS_H_
