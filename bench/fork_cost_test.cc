#include "bench/fork_cost.h"

#include <memory>

#include "bench/evp_variant.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::bench {
namespace {

using ::testing::HasSubstr;

VariantFactory Software() {
  return []() -> absl::StatusOr<std::unique_ptr<Variant>> {
    absl::StatusOr<std::unique_ptr<EvpVariant>> v = EvpVariant::NewSoftware();
    if (!v.ok()) return v.status();
    return std::unique_ptr<Variant>(std::move(*v));
  };
}

// Every child is timed twice: in the child from fork() returning, and from
// fork() in the parent; fork() itself is the difference.
TEST(ForkCostTest, TimesEachChildInTheChildAndFromFork) {
  absl::StatusOr<ForkCost> cost =
      MeasureForkCost(Software(), ChildReopen(), Op::kEcdsaP256Sign, 3);
  ASSERT_TRUE(cost.ok()) << cost.status();
  EXPECT_EQ(cost->op, Op::kEcdsaP256Sign);
  EXPECT_EQ(cost->steady.count(), 200u);
  EXPECT_EQ(cost->fork_only.count(), 3u);
  EXPECT_EQ(cost->child_first.count(), 3u);
  EXPECT_EQ(cost->fork_to_first.count(), 3u);
  EXPECT_EQ(cost->second.count(), 3u);
  // Noop and working children alike.
  EXPECT_EQ(cost->fork_to_child.count(), 6u);
  EXPECT_GT(cost->child_first.PercentileMicros(0.5), 0);
  // Each child's fork_to_first is its fork_to_child + child_first.
  EXPECT_LE(cost->child_first.MaxMicros(), cost->fork_to_first.MaxMicros());
  EXPECT_LE(cost->child_first.PercentileMicros(0),
            cost->fork_to_first.PercentileMicros(0));
}

// What the child rebuilds is its own: a reopen that fails fails the
// measurement, naming the child.
TEST(ForkCostTest, AChildsFailureIsReported) {
  const ChildReopen broken = [](Variant&, Op, std::unique_ptr<Variant>*)
      -> absl::StatusOr<std::unique_ptr<OpRunner>> {
    return absl::FailedPreconditionError("re-initialisation refused");
  };
  absl::StatusOr<ForkCost> cost =
      MeasureForkCost(Software(), broken, Op::kEcdsaP256Sign, 2);
  ASSERT_FALSE(cost.ok());
  EXPECT_EQ(cost.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(cost.status().message(), HasSubstr("forked child 2"));
  EXPECT_THAT(cost.status().message(), HasSubstr("re-initialisation refused"));
}

// A child re-creates its runner with the reopen function: its result is
// checked with the variant it kept.
TEST(ForkCostTest, ChildUsesTheReopenedRunner) {
  const ChildReopen fresh = [](Variant&, Op op, std::unique_ptr<Variant>* keep)
      -> absl::StatusOr<std::unique_ptr<OpRunner>> {
    absl::StatusOr<std::unique_ptr<EvpVariant>> v = EvpVariant::NewSoftware();
    if (!v.ok()) return v.status();
    absl::StatusOr<std::unique_ptr<OpRunner>> runner = (*v)->Prepare(op, 1);
    *keep = std::move(*v);
    return runner;
  };
  absl::StatusOr<ForkCost> cost =
      MeasureForkCost(Software(), fresh, Op::kEd25519Sign, 1);
  ASSERT_TRUE(cost.ok()) << cost.status();
  EXPECT_EQ(cost->child_first.count(), 1u);
}

}  // namespace
}  // namespace hsmd::bench
