#include "bench/json_writer.h"

#include <limits>

#include "gtest/gtest.h"

namespace hsmd::bench {
namespace {

TEST(JsonWriterTest, NestedContainers) {
  JsonWriter w;
  w.BeginObject()
      .Field("name", "bench")
      .Field("n", 3)
      .Key("list")
      .BeginArray()
      .Int(1)
      .Number(2.5)
      .BeginObject()
      .Field("ok", true)
      .EndObject()
      .Null()
      .EndArray()
      .Key("empty")
      .BeginObject()
      .EndObject()
      .EndObject();
  EXPECT_EQ(w.str(), R"({"name":"bench","n":3,"list":[1,2.5,{"ok":true},null],)"
                     R"("empty":{}})");
}

TEST(JsonWriterTest, EscapesStrings) {
  JsonWriter w;
  w.String("a\"b\\c\nd\x01");
  EXPECT_EQ(w.str(), R"("a\"b\\c\nd\u0001")");
}

TEST(JsonWriterTest, NonFiniteNumbersAreNull) {
  JsonWriter w;
  w.BeginArray()
      .Number(std::numeric_limits<double>::infinity())
      .Number(std::numeric_limits<double>::quiet_NaN())
      .EndArray();
  EXPECT_EQ(w.str(), "[null,null]");
}

}  // namespace
}  // namespace hsmd::bench
