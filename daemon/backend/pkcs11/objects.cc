#include "daemon/backend/pkcs11/objects.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/backend/pkcs11/ck_rv.h"

namespace hsmd::backend::pkcs11 {

AttributeTemplate& AttributeTemplate::AddUlong(CK_ATTRIBUTE_TYPE type,
                                               CK_ULONG value) {
  std::string& stored = values_.emplace_back(sizeof(value), '\0');
  std::memcpy(stored.data(), &value, sizeof(value));
  attributes_.push_back({type, stored.data(), sizeof(value)});
  return *this;
}

AttributeTemplate& AttributeTemplate::AddBool(CK_ATTRIBUTE_TYPE type,
                                              bool value) {
  std::string& stored =
      values_.emplace_back(1, static_cast<char>(value ? CK_TRUE : CK_FALSE));
  attributes_.push_back({type, stored.data(), 1});
  return *this;
}

AttributeTemplate& AttributeTemplate::AddBytes(CK_ATTRIBUTE_TYPE type,
                                               absl::string_view value) {
  std::string& stored = values_.emplace_back(value);
  attributes_.push_back({type, stored.data(), stored.size()});
  return *this;
}

absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindObjects(
    CK_FUNCTION_LIST* fns, CK_SESSION_HANDLE session, AttributeTemplate& tmpl,
    size_t limit) {
  CK_RV rv = fns->C_FindObjectsInit(session, tmpl.data(), tmpl.size());
  if (rv != CKR_OK) return Pkcs11Error(rv, "C_FindObjectsInit");
  std::vector<CK_OBJECT_HANDLE> found;
  CK_OBJECT_HANDLE batch[64];
  absl::Status status;
  while (true) {
    CK_ULONG count = 0;
    rv = fns->C_FindObjects(session, batch, 64, &count);
    if (rv != CKR_OK) {
      status = Pkcs11Error(rv, "C_FindObjects");
      break;
    }
    if (count == 0) break;
    found.insert(found.end(), batch, batch + count);
    if (found.size() > limit) {
      status = absl::FailedPreconditionError(
          absl::StrCat("more than ", limit, " token objects match the search"));
      break;
    }
  }
  // Always end the search, or the session stays in search mode.
  rv = fns->C_FindObjectsFinal(session);
  if (!status.ok()) return status;
  if (rv != CKR_OK) return Pkcs11Error(rv, "C_FindObjectsFinal");
  return found;
}

absl::StatusOr<std::optional<std::string>> GetBytesAttribute(
    CK_FUNCTION_LIST* fns, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
    CK_ATTRIBUTE_TYPE type) {
  CK_ATTRIBUTE attribute = {type, nullptr, 0};
  CK_RV rv = fns->C_GetAttributeValue(session, object, &attribute, 1);
  if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE) {
    return std::nullopt;
  }
  if (rv != CKR_OK) return Pkcs11Error(rv, "C_GetAttributeValue");
  if (attribute.ulValueLen == CK_UNAVAILABLE_INFORMATION) return std::nullopt;
  std::string value(attribute.ulValueLen, '\0');
  if (value.empty()) return value;
  attribute.pValue = value.data();
  rv = fns->C_GetAttributeValue(session, object, &attribute, 1);
  if (rv != CKR_OK) return Pkcs11Error(rv, "C_GetAttributeValue");
  value.resize(attribute.ulValueLen);
  return value;
}

absl::StatusOr<std::optional<CK_ULONG>> GetUlongAttribute(
    CK_FUNCTION_LIST* fns, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
    CK_ATTRIBUTE_TYPE type) {
  CK_ULONG value = 0;
  CK_ATTRIBUTE attribute = {type, &value, sizeof(value)};
  CK_RV rv = fns->C_GetAttributeValue(session, object, &attribute, 1);
  if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE) {
    return std::nullopt;
  }
  if (rv != CKR_OK) return Pkcs11Error(rv, "C_GetAttributeValue");
  if (attribute.ulValueLen != sizeof(value)) return std::nullopt;
  return value;
}

absl::StatusOr<std::optional<bool>> GetBoolAttribute(CK_FUNCTION_LIST* fns,
                                                     CK_SESSION_HANDLE session,
                                                     CK_OBJECT_HANDLE object,
                                                     CK_ATTRIBUTE_TYPE type) {
  CK_BBOOL value = CK_FALSE;
  CK_ATTRIBUTE attribute = {type, &value, sizeof(value)};
  CK_RV rv = fns->C_GetAttributeValue(session, object, &attribute, 1);
  if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE) {
    return std::nullopt;
  }
  if (rv != CKR_OK) return Pkcs11Error(rv, "C_GetAttributeValue");
  if (attribute.ulValueLen != sizeof(value)) return std::nullopt;
  return value == CK_TRUE;
}

}  // namespace hsmd::backend::pkcs11
