#include "cli/output.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace headroom::cli {
namespace {

namespace json = boost::json;

TEST(Output, ParsesOutputFormats) {
  EXPECT_EQ(*parse_output_format("table"), OutputFormat::kTable);
  EXPECT_EQ(*parse_output_format("json"), OutputFormat::kJson);
  EXPECT_EQ(parse_output_format("yaml").status().code(), ErrorCode::kInvalidArgument);
}

TEST(Output, FindsDottedPaths) {
  const json::value v = json::parse(R"({"tenant":{"id":"ten_1","n":{"deep":3}},"list":[1]})");
  ASSERT_NE(find_path(v, "tenant.id"), nullptr);
  EXPECT_EQ(find_path(v, "tenant.id")->as_string(), "ten_1");
  EXPECT_EQ(find_path(v, "tenant.n.deep")->as_int64(), 3);
  EXPECT_EQ(find_path(v, "tenant.missing"), nullptr);
  EXPECT_EQ(find_path(v, "list.0"), nullptr);  // paths go through objects only
  EXPECT_EQ(find_path(v, "tenant.id.more"), nullptr);
  EXPECT_EQ(find_path(v, ""), &v);
}

TEST(Output, CellTextOfEachKindOfValue) {
  const json::value v = json::parse(
      R"({"s":"acme","n":42,"d":1.5,"b":true,"z":null,"scopes":["compute","inference"],"empty":[],
          "o":{"a":1},"mixed":[{"a":1}],"money":"1.50"})");
  auto cell = [&](const char* path) { return cell_text(find_path(v, path)); };
  EXPECT_EQ(cell("s"), "acme");
  EXPECT_EQ(cell("n"), "42");
  EXPECT_EQ(cell("d"), "1.5");
  EXPECT_EQ(cell("b"), "true");
  EXPECT_EQ(cell("z"), "-");
  EXPECT_EQ(cell("missing"), "-");
  EXPECT_EQ(cell("scopes"), "compute,inference");
  EXPECT_EQ(cell("empty"), "-");
  EXPECT_EQ(cell("o"), R"({"a":1})");
  EXPECT_EQ(cell("mixed"), R"([{"a":1}])");
  EXPECT_EQ(cell("money"), "1.50");
}

TEST(Output, CellTextCannotDriveTheTerminal) {
  // An escape sequence, a newline, a carriage return and a C1 control (U+009B, CSI).
  const json::value v = json::parse(R"({"name":"evil\u001b[2J\nname\r\u009b31m"})");
  EXPECT_EQ(cell_text(find_path(v, "name")), "evil?[2J?name??31m");
  EXPECT_EQ(printable("a\tb\x7f" "c"), "a?b?c");
  EXPECT_EQ(printable("caf\xc3\xa9"), "caf\xc3\xa9");  // ordinary UTF-8 stays
}

TEST(Output, RendersAlignedTables) {
  const std::vector<Column> columns = {{"ID", "id"}, {"NAME", "name"}, {"GPUS", "gpus", Align::kRight}, {"NOTE", "note"}};
  const std::string table = render_table(columns, {{"ten_1", "acme", "8", "x"}, {"ten_22", "b", "128", ""}});
  EXPECT_EQ(table,
            "ID      NAME  GPUS  NOTE\n"
            "ten_1   acme     8  x\n"
            "ten_22  b      128\n");
}

TEST(Output, TableWidthCountsCodePoints) {
  const std::vector<Column> columns = {{"NAME", "name"}, {"ID", "id"}};
  const std::string table = render_table(columns, {{"café", "1"}, {"ab", "2"}});
  EXPECT_EQ(table,
            "NAME  ID\n"
            "café  1\n"
            "ab    2\n");
  EXPECT_EQ(display_width("café"), 4u);
}

TEST(Output, ShortRowsAndEmptyTables) {
  const std::vector<Column> columns = {{"A", "a"}, {"B", "b"}};
  EXPECT_EQ(render_table(columns, {}), "A  B\n");
  EXPECT_EQ(render_table(columns, {{"xyz"}}), "A    B\nxyz\n");
}

TEST(Output, RendersAListOfObjects) {
  const json::value v = json::parse(R"({"data":[{"id":"ten_1","name":"acme","kind":"external"},
                                                  {"id":"ten_2","name":"owner","kind":"internal","extra":1}],
                                        "has_more":false})");
  const std::vector<Column> columns = {{"ID", "id"}, {"NAME", "name"}, {"KIND", "kind"}};
  EXPECT_EQ(render_list(columns, find_path(v, "data")->as_array()),
            "ID     NAME   KIND\n"
            "ten_1  acme   external\n"
            "ten_2  owner  internal\n");
}

TEST(Output, RendersARecord) {
  const json::value v = json::parse(R"({"tenant":{"id":"ten_1","name":"acme"},"key":{"scopes":["compute"]}})");
  const std::vector<Column> columns = {{"TENANT", "tenant.id"}, {"TENANT NAME", "tenant.name"}, {"SCOPES", "key.scopes"},
                                       {"EXPIRES", "key.expires_at"}};
  EXPECT_EQ(render_record(columns, v),
            "TENANT       ten_1\n"
            "TENANT NAME  acme\n"
            "SCOPES       compute\n"
            "EXPIRES      -\n");
}

TEST(Output, PrettyPrintsJson) {
  const json::value v =
      json::parse(R"({"data":[{"id":"t\"1","n":1.5,"ok":true,"none":null}],"empty":{},"list":[],"has_more":false})");
  EXPECT_EQ(pretty_json(v),
            "{\n"
            "  \"data\": [\n"
            "    {\n"
            "      \"id\": \"t\\\"1\",\n"
            "      \"n\": 1.5,\n"
            "      \"ok\": true,\n"
            "      \"none\": null\n"
            "    }\n"
            "  ],\n"
            "  \"empty\": {},\n"
            "  \"list\": [],\n"
            "  \"has_more\": false\n"
            "}\n");
  EXPECT_EQ(json::parse(pretty_json(v)), v);  // the same document
  EXPECT_EQ(pretty_json(json::value("x")), "\"x\"\n");
  EXPECT_EQ(pretty_json(json::parse("[2.0,1e300,-0.25,7]")), "[\n  2.0,\n  1e+300,\n  -0.25,\n  7\n]\n");
}

}  // namespace
}  // namespace headroom::cli
