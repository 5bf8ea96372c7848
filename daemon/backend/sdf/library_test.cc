#include "daemon/backend/sdf/library.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::backend::sdf {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

std::string Runfile(absl::string_view path) {
  return absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"), "/",
                      path);
}

TEST(LibraryTest, LoadsTheSoftwareDevice) {
  absl::StatusOr<std::shared_ptr<Library>> library =
      Library::Load(Runfile("tools/softsdf/libsoftsdf.so"));
  ASSERT_TRUE(library.ok()) << library.status();
  EXPECT_TRUE((*library)->missing_optional().empty());
  const SdfFunctions& f = (*library)->fns();
  EXPECT_NE(f.OpenDevice, nullptr);
  EXPECT_NE(f.InternalSign_ECC, nullptr);
  EXPECT_NE(f.InternalDecrypt_ECC, nullptr);
  EXPECT_NE(f.GetSymmKeyHandle, nullptr);
}

TEST(LibraryTest, MissingOptionalFunctionsTurnFeaturesOff) {
  absl::StatusOr<std::shared_ptr<Library>> library =
      Library::Load(Runfile("tests/sdf/libfaultysdf_minimal.so"));
  ASSERT_TRUE(library.ok()) << library.status();
  EXPECT_THAT(
      (*library)->missing_optional(),
      UnorderedElementsAre("SDF_InternalDecrypt_ECC", "SDF_DestroyKey",
                           "SDF_GetSymmKeyHandle", "SDF_ExternalVerify_ECC"));
  EXPECT_EQ((*library)->fns().InternalDecrypt_ECC, nullptr);
  EXPECT_NE((*library)->fns().ImportKeyWithKEK, nullptr);
  EXPECT_THAT((*library)->Missing("SDF_GetSymmKeyHandle"),
              HasSubstr("SDF_GetSymmKeyHandle is not exported by the SDF "
                        "library "));
}

TEST(LibraryTest, MissingRequiredFunctionIsNamed) {
  const std::string path = Runfile("tests/sdf/libfaultysdf_nosign.so");
  absl::StatusOr<std::shared_ptr<Library>> library = Library::Load(path);
  ASSERT_FALSE(library.ok());
  EXPECT_EQ(library.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(library.status().message()),
              HasSubstr(absl::StrCat("SDF library ", path,
                                     " does not export SDF_InternalSign_ECC, "
                                     "which hsmd requires")));
}

TEST(LibraryTest, NotAnSdfLibrary) {
  absl::StatusOr<std::shared_ptr<Library>> library = Library::Load("libm.so.6");
  ASSERT_FALSE(library.ok());
  EXPECT_THAT(std::string(library.status().message()),
              HasSubstr("does not export SDF_OpenDevice, SDF_CloseDevice"));
  library = Library::Load("/nonexistent/libsdf.so");
  ASSERT_FALSE(library.ok());
  EXPECT_EQ(library.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(library.status().message()),
              HasSubstr("cannot load SDF library /nonexistent/libsdf.so"));
  EXPECT_EQ(Library::Load("").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hsmd::backend::sdf
