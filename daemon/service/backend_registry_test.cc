#include "daemon/service/backend_registry.h"

#include <string>

#include "daemon/backend/fake/fake_backend.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::service {
namespace {

using backend::FakeBackend;
using ::testing::HasSubstr;

class BackendRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto a = FakeBackend::New({.name = "a", .token_label = "ta"});
    auto b = FakeBackend::New({.name = "b", .token_label = "tb"});
    ASSERT_TRUE(a.ok() && b.ok());
    a_ = a->get();
    b_ = b->get();
    key_a_ = Generate(*a_, "ka");
    key_b_ = Generate(*b_, "kb");
    std::vector<std::unique_ptr<backend::Backend>> backends;
    backends.push_back(*std::move(a));
    backends.push_back(*std::move(b));
    auto registry = BackendRegistry::New(std::move(backends));
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
  }

  v1::Key Generate(FakeBackend& backend, const std::string& label) {
    v1::GenerateKeyRequest r;
    r.set_label(label);
    r.set_key_type(v1::KEY_TYPE_EC);
    r.set_curve(v1::CURVE_P256);
    return *backend.GenerateKey(r, {});
  }

  FakeBackend* a_ = nullptr;
  FakeBackend* b_ = nullptr;
  v1::Key key_a_, key_b_;
  std::unique_ptr<BackendRegistry> registry_;
};

TEST_F(BackendRegistryTest, RoutesByLookupAndCaches) {
  v1::KeyRef ref;
  ref.set_uri("pkcs11:object=kb");
  absl::StatusOr<BackendRegistry::Route> route = registry_->Resolve(ref, {});
  ASSERT_TRUE(route.ok()) << route.status();
  EXPECT_EQ(route->backend, b_);
  EXPECT_EQ(route->key_id, key_b_.key_id());
  EXPECT_EQ(route->key_label, "kb");
  // What the access policy matches.
  EXPECT_EQ(route->token_label, key_b_.token_label());
  EXPECT_EQ(route->id, key_b_.id());
  EXPECT_EQ(route->uri, key_b_.uri());
  EXPECT_EQ(b_->CallCount("GetKey"), 1u);
  // Cached: no second lookup.
  ASSERT_TRUE(registry_->Resolve(ref, {}).ok());
  EXPECT_EQ(b_->CallCount("GetKey"), 1u);
  // NOT_FOUND from an operation drops the route.
  registry_->Observe(ref, absl::NotFoundError("gone"), "");
  ASSERT_TRUE(registry_->Resolve(ref, {}).ok());
  EXPECT_EQ(b_->CallCount("GetKey"), 2u);
  // Success with another key id (the key was re-created) drops it too: its
  // attributes are looked up afresh.
  registry_->Observe(ref, absl::OkStatus(), "another-key-id");
  ASSERT_TRUE(registry_->Resolve(ref, {}).ok());
  EXPECT_EQ(b_->CallCount("GetKey"), 3u);
  registry_->Observe(ref, absl::OkStatus(), key_b_.key_id());
  ASSERT_TRUE(registry_->Resolve(ref, {}).ok());
  EXPECT_EQ(b_->CallCount("GetKey"), 3u);

  v1::KeyRef by_id;
  by_id.set_key_id(key_a_.key_id());
  EXPECT_EQ(registry_->Resolve(by_id, {})->backend, a_);
}

TEST_F(BackendRegistryTest, ErrorsNameTheProblem) {
  v1::KeyRef ref;
  ref.set_uri("pkcs11:object=none");
  absl::StatusOr<BackendRegistry::Route> route = registry_->Resolve(ref, {});
  EXPECT_EQ(route.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(route.status().message()),
              HasSubstr("pkcs11:object=none"));

  ref.set_uri("file:///etc/key.pem");
  route = registry_->Resolve(ref, {});
  EXPECT_EQ(route.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(route.status().message()),
              HasSubstr("unsupported scheme"));

  ref.set_uri("sdf:key=1");
  route = registry_->Resolve(ref, {});
  EXPECT_EQ(route.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(route.status().message()),
              HasSubstr("no sdf backend is configured"));

  // A backend that cannot answer wins over another's NOT_FOUND.
  a_->SetServing(false);
  ref.set_uri("pkcs11:object=kb-missing");
  route = registry_->Resolve(ref, {});
  EXPECT_EQ(route.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(BackendRegistryTest, ListsAllGeneratesAndRandom) {
  absl::StatusOr<std::vector<v1::Key>> keys = registry_->ListKeys({}, {});
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->size(), 2u);

  EXPECT_EQ(*registry_->ForGenerateKey(""), a_);
  EXPECT_EQ(*registry_->ForGenerateKey("b"), b_);
  EXPECT_EQ(registry_->ForGenerateKey("c").status().code(),
            absl::StatusCode::kNotFound);

  EXPECT_TRUE(registry_->AllServing());
  a_->SetServing(false);
  EXPECT_FALSE(registry_->AllServing());
  EXPECT_EQ(registry_->ForRandom(), b_);
  // A failing backend fails the whole list rather than hiding its keys.
  EXPECT_EQ(registry_->ListKeys({}, {}).status().code(),
            absl::StatusCode::kUnavailable);
}

// Two SDF devices next to a PKCS#11 token: sdf:device=X goes to X only, so
// one device being down never fails requests for the other.
TEST(BackendRegistrySdfTest, RoutesSdfUrisByDevice) {
  auto p = FakeBackend::New({.name = "hsm", .token_label = "t"});
  auto c0 = FakeBackend::New(
      {.name = "card-a", .kind = "sdf", .token_label = "card0"});
  auto c1 = FakeBackend::New(
      {.name = "card-b", .kind = "sdf", .token_label = "card1"});
  ASSERT_TRUE(p.ok() && c0.ok() && c1.ok());
  FakeBackend* pkcs11 = p->get();
  FakeBackend* card0 = c0->get();
  FakeBackend* card1 = c1->get();
  std::vector<std::unique_ptr<backend::Backend>> backends;
  backends.push_back(*std::move(p));
  backends.push_back(*std::move(c0));
  backends.push_back(*std::move(c1));
  auto registry = BackendRegistry::New(std::move(backends));
  ASSERT_TRUE(registry.ok()) << registry.status();

  v1::KeyRef ref;
  ref.set_uri("sdf:device=card1;index=1;usage=sign");
  (void)(*registry)->Resolve(ref, {});
  EXPECT_EQ(card0->CallCount("GetKey"), 0u);
  EXPECT_EQ(card1->CallCount("GetKey"), 1u);
  EXPECT_EQ(pkcs11->CallCount("GetKey"), 0u);

  // An unknown device: NOT_FOUND naming it, no backend asked.
  ref.set_uri("sdf:device=card9;index=1;usage=sign");
  absl::StatusOr<BackendRegistry::Route> route = (*registry)->Resolve(ref, {});
  EXPECT_EQ(route.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(route.status().message()),
              HasSubstr("sdf:device=card9"));
  EXPECT_EQ(card0->CallCount("GetKey") + card1->CallCount("GetKey"), 1u);

  // Without device=, every sdf backend is a candidate.
  ref.set_uri("sdf:index=1;usage=sign");
  (void)(*registry)->Resolve(ref, {});
  EXPECT_EQ(card0->CallCount("GetKey"), 1u);
  EXPECT_EQ(card1->CallCount("GetKey"), 2u);

  // Listing one device asks only that one (the other is down). (The fake
  // backend itself speaks only pkcs11: URIs; the real one is exercised in
  // //tests/sdf:mixed_backends_test.)
  card1->SetServing(false, "unplugged");
  v1::ListKeysRequest list;
  list.set_uri_filter("sdf:device=card0");
  absl::StatusOr<std::vector<v1::Key>> keys = (*registry)->ListKeys(list, {});
  EXPECT_EQ(card0->CallCount("ListKeys"), 1u);
  EXPECT_EQ(card1->CallCount("ListKeys"), 0u);
  EXPECT_EQ(pkcs11->CallCount("ListKeys"), 0u);
  // An unknown device lists nothing.
  list.set_uri_filter("sdf:device=card9");
  keys = (*registry)->ListKeys(list, {});
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_TRUE(keys->empty());
}

TEST(BackendRegistryNewTest, RejectsDuplicatesAndEmpty) {
  EXPECT_FALSE(BackendRegistry::New({}).ok());
  std::vector<std::unique_ptr<backend::Backend>> backends;
  backends.push_back(*FakeBackend::New({.name = "x"}));
  backends.push_back(*FakeBackend::New({.name = "x"}));
  absl::StatusOr<std::unique_ptr<BackendRegistry>> r =
      BackendRegistry::New(std::move(backends));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("\"x\""));
}

}  // namespace
}  // namespace hsmd::service
