// What client commands print: aligned tables for people, pretty JSON for
// scripts. Pure functions of JSON values; nothing here touches a stream.
#pragma once

#include <boost/json/fwd.hpp>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace headroom::cli {

enum class OutputFormat { kTable, kJson };

// "table" or "json".
Result<OutputFormat> parse_output_format(std::string_view text);

enum class Align { kLeft, kRight };

// One column of a table: a heading and where its value sits in each object,
// as a dotted path ("tenant.id"). Numbers and money read better kRight.
struct Column {
  std::string header;
  std::string path;
  Align align = Align::kLeft;
};

// The value at a dotted path inside nested objects, or nullptr.
const boost::json::value* find_path(const boost::json::value& root, std::string_view dotted_path);

// The text of a value in a table cell: strings as they are, null or missing
// as "-", an array of scalars joined with ",", anything else as compact
// JSON. Control characters become '?', so that text from the server cannot
// drive the terminal.
std::string cell_text(const boost::json::value* value);

// `text` with control characters replaced by '?': safe to print to a terminal.
std::string printable(std::string_view text);

// Rows under a heading, columns aligned, two spaces apart, no trailing
// spaces, every line ending in '\n'. A row with fewer cells than columns is
// padded with "". Width is counted in code points (wide characters count one).
std::string render_table(const std::vector<Column>& columns, const std::vector<std::vector<std::string>>& rows);

// A list: one row per object of `items`.
std::string render_list(const std::vector<Column>& columns, const boost::json::array& items);

// One object, one line per column: heading, then value.
std::string render_record(const std::vector<Column>& columns, const boost::json::value& object);

// Indented two spaces a level, keys in the order received, ending in '\n'.
std::string pretty_json(const boost::json::value& value);

// Code points in a UTF-8 string: its width on a terminal, near enough.
std::size_t display_width(std::string_view utf8);

}  // namespace headroom::cli
