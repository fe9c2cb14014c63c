#include "api/json_body.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include <string>

#include "common/limits.h"

namespace headroom::api {
namespace {

JsonBody body_of(std::string_view text) {
  auto parsed = JsonBody::parse(text);
  EXPECT_TRUE(parsed.is_ok()) << text << ": " << parsed.status().to_string();
  return parsed ? std::move(parsed).value() : JsonBody::parse("{}").value();
}

template <typename T>
void expect_error(const Result<T>& result, std::string_view message_part) {
  ASSERT_FALSE(result.is_ok()) << "expected an error with \"" << message_part << "\"";
  EXPECT_EQ(result.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find(message_part), std::string::npos) << result.status().message();
}

void expect_error(const Status& status, std::string_view message_part) {
  ASSERT_FALSE(status.is_ok()) << "expected an error with \"" << message_part << "\"";
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(status.message().find(message_part), std::string::npos) << status.message();
}

// {"a":[[[...]]]}: an object holding arrays, `depth` containers in all.
std::string nested(std::size_t depth) {
  std::string s = "{\"a\":";
  for (std::size_t i = 1; i < depth; ++i) s += '[';
  s += '1';
  for (std::size_t i = 1; i < depth; ++i) s += ']';
  s += '}';
  return s;
}

TEST(JsonBodyParse, AcceptsOneObject) {
  JsonBody body = body_of(R"({"name":"acme","n":1,"nested":{"x":[1,2]}})");
  EXPECT_EQ(body.object().size(), 3u);
  EXPECT_TRUE(JsonBody::parse("{}").is_ok());
  EXPECT_TRUE(JsonBody::parse(" \n{ } \t").is_ok());
  EXPECT_TRUE(JsonBody::parse(R"({"name":"caf\u00e9 \ud83d\ude00"})").is_ok());
}

TEST(JsonBodyParse, RejectsWhatIsNotOneObject) {
  expect_error(JsonBody::parse(""), "the request body is empty");
  expect_error(JsonBody::parse("not json"), "not valid JSON");
  expect_error(JsonBody::parse("{"), "not valid JSON");
  expect_error(JsonBody::parse(R"({"a":1,})"), "not valid JSON");
  expect_error(JsonBody::parse(R"({"a":1} {"b":2})"), "not valid JSON");
  expect_error(JsonBody::parse(R"({"a":1} x)"), "not valid JSON");
  expect_error(JsonBody::parse(R"({'a':1})"), "not valid JSON");
  expect_error(JsonBody::parse(R"({"a":1 /* comment */})"), "not valid JSON");
  expect_error(JsonBody::parse(R"({"a":NaN})"), "not valid JSON");
  expect_error(JsonBody::parse("[]"), "must be a JSON object");
  expect_error(JsonBody::parse("[{\"a\":1}]"), "must be a JSON object");
  expect_error(JsonBody::parse("\"text\""), "must be a JSON object");
  expect_error(JsonBody::parse("null"), "must be a JSON object");
  expect_error(JsonBody::parse("42"), "must be a JSON object");
  expect_error(JsonBody::parse(std::string_view("{}\0", 3)), "not valid JSON");
}

TEST(JsonBodyParse, RejectsInvalidUtf8) {
  expect_error(JsonBody::parse("{\"name\":\"\xFF\"}"), "not valid JSON");
  expect_error(JsonBody::parse("{\"name\":\"\xC3\"}"), "not valid JSON");
  expect_error(JsonBody::parse("{\"\xC0\xAF\":1}"), "not valid JSON");
  expect_error(JsonBody::parse("{\"name\":\"\xED\xA0\x80\"}"), "not valid JSON");  // a surrogate
}

TEST(JsonBodyParse, DepthLimit) {
  ASSERT_EQ(limits::kJsonDepth, 32u);
  EXPECT_TRUE(JsonBody::parse(nested(limits::kJsonDepth)).is_ok());
  expect_error(JsonBody::parse(nested(limits::kJsonDepth + 1)), "not valid JSON");
  // Far past the limit: an error, not a stack overflow.
  std::string deep(200'000, '[');
  expect_error(JsonBody::parse("{\"a\":" + deep), "not valid JSON");
  std::string deep_objects;
  for (int i = 0; i < 100'000; ++i) deep_objects += "{\"a\":";
  expect_error(JsonBody::parse(deep_objects), "not valid JSON");
}

TEST(JsonBodyOnlyFields, NamesTheUnknownField) {
  JsonBody body = body_of(R"({"name":"x","nmae":"y"})");
  Status s = body.only_fields({"name", "kind"});
  expect_error(s, "unknown field \"nmae\"");
  expect_error(s, "(expected name, kind)");
  EXPECT_TRUE(body.only_fields({"name", "nmae"}).is_ok());
  EXPECT_TRUE(body_of("{}").only_fields({}).is_ok());
  expect_error(body_of(R"({"a":1})").only_fields({}), "unknown field \"a\"");
  // A long unknown key is cut in the message.
  std::string key(1'000, 'k');
  Status long_key = body_of("{\"" + key + "\":1}").only_fields({"name"});
  ASSERT_FALSE(long_key.is_ok());
  EXPECT_LT(long_key.message().size(), 200u);
}

TEST(JsonBodyRequiredString, ErrorsNameTheField) {
  JsonBody body = body_of(R"({"name":"acme","n":5,"empty":"","nul":null,"arr":["x"],"obj":{},"b":true})");
  EXPECT_EQ(body.required_string("name", 64).value(), "acme");
  expect_error(body.required_string("missing", 64), "missing field \"missing\"");
  expect_error(body.required_string("nul", 64), "missing field \"nul\"");
  expect_error(body.required_string("n", 64), "field \"n\" must be a string");
  expect_error(body.required_string("arr", 64), "field \"arr\" must be a string");
  expect_error(body.required_string("obj", 64), "field \"obj\" must be a string");
  expect_error(body.required_string("b", 64), "field \"b\" must be a string");
  expect_error(body.required_string("empty", 64), "field \"empty\" must not be empty");
  EXPECT_EQ(body.required_string("name", 4).value(), "acme");  // exactly the limit
  expect_error(body.required_string("name", 3), "field \"name\" is longer than 3 bytes");
  // The limit is in bytes, not characters.
  JsonBody utf8 = body_of(R"({"name":"\u00e9\u00e9"})");
  EXPECT_TRUE(utf8.required_string("name", 4).is_ok());
  expect_error(utf8.required_string("name", 3), "longer than 3 bytes");
}

TEST(JsonBodyOptionalString, AbsentOrNullIsNullopt) {
  JsonBody body = body_of(R"({"kind":"internal","nul":null,"n":1,"empty":""})");
  EXPECT_EQ(body.optional_string("kind", 16).value(), std::optional<std::string>("internal"));
  EXPECT_EQ(body.optional_string("absent", 16).value(), std::nullopt);
  EXPECT_EQ(body.optional_string("nul", 16).value(), std::nullopt);
  expect_error(body.optional_string("n", 16), "field \"n\" must be a string");
  expect_error(body.optional_string("empty", 16), "field \"empty\" must not be empty");
  expect_error(body.optional_string("kind", 4), "field \"kind\" is longer than 4 bytes");
}

TEST(JsonBodyOptionalTime, ParsesRfc3339AndNamesTheField) {
  JsonBody body = body_of(R"({"expires_at":"2026-11-26T06:21:42Z","bad":"tomorrow","n":1,"nul":null,
                              "offset":"2026-11-26T07:21:42+01:00","long":"2026-11-26T06:21:42.123456789000000000000000000000000000000000000000000000000Z"})");
  auto t = body.optional_time("expires_at");
  ASSERT_TRUE(t.is_ok());
  EXPECT_EQ(*t.value(), Timestamp::from_unix_seconds(1'795'674'102));
  EXPECT_EQ(body.optional_time("offset").value(), t.value());
  EXPECT_EQ(body.optional_time("absent").value(), std::nullopt);
  EXPECT_EQ(body.optional_time("nul").value(), std::nullopt);
  auto bad = body.optional_time("bad");
  expect_error(bad, "field \"bad\"");
  expect_error(bad, "invalid time \"tomorrow\"");
  expect_error(body.optional_time("n"), "field \"n\" must be a string");
  expect_error(body.optional_time("long"), "field \"long\" is longer than 64 bytes");
}

TEST(JsonBodyRequiredStringArray, ErrorsNameTheField) {
  JsonBody body = body_of(R"({"scopes":["compute","billing"],"empty":[],"str":"compute","mixed":["a",1],
                              "nested":[["a"]],"nul":null,"long":["aaaaaaaaaaaaaaaaa"]})");
  EXPECT_EQ(body.required_string_array("scopes", 8, 16).value(), (std::vector<std::string>{"compute", "billing"}));
  EXPECT_TRUE(body.required_string_array("empty", 8, 16).value().empty());
  expect_error(body.required_string_array("missing", 8, 16), "missing field \"missing\"");
  expect_error(body.required_string_array("nul", 8, 16), "missing field \"nul\"");
  expect_error(body.required_string_array("str", 8, 16), "field \"str\" must be an array of strings");
  expect_error(body.required_string_array("mixed", 8, 16), "field \"mixed\" must be an array of short strings");
  expect_error(body.required_string_array("nested", 8, 16), "field \"nested\" must be an array of short strings");
  expect_error(body.required_string_array("long", 8, 16), "field \"long\" must be an array of short strings");
  EXPECT_TRUE(body.required_string_array("long", 8, 17).is_ok());
  expect_error(body.required_string_array("scopes", 1, 16), "field \"scopes\" has more than 1 items");
  EXPECT_TRUE(body.required_string_array("scopes", 2, 16).is_ok());
}

TEST(WriteJson, SetsStatusTypeAndBody) {
  net::HttpResponse r;
  r.content_type = "text/plain";
  write_json(r, 201, boost::json::object{{"id", "ten_1"}, {"n", 2}});
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(boost::json::parse(r.body), boost::json::parse(R"({"id":"ten_1","n":2})"));
}

TEST(JsonTime, Rfc3339OrNull) {
  EXPECT_TRUE(json_time(std::nullopt).is_null());
  EXPECT_EQ(json_time(Timestamp::from_unix_seconds(1'795'674'102)).as_string(), "2026-11-26T06:21:42Z");
}

}  // namespace
}  // namespace headroom::api
