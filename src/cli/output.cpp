#include "cli/output.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>

namespace headroom::cli {
namespace {

namespace json = boost::json;

// Replaces C0 controls, DEL and the C1 controls (U+0080..U+009F, 0xC2 0x80..0x9F
// in UTF-8) with '?'. Boost.JSON has already checked the UTF-8.
std::string sanitize(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      out += '?';
    } else if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      out += '?';
      ++i;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

bool is_scalar(const json::value& v) { return !v.is_object() && !v.is_array(); }

// The shortest text that reads back as the same double, "1.5" and not
// Boost.JSON's "1.5E0"; "2.0", not "2", so that it stays a fraction.
std::string number_text(double d) {
  std::array<char, 64> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), d);
  if (ec != std::errc()) return json::serialize(json::value(d));
  std::string text(buffer.data(), end);
  if (text.find_first_of(".eE") == std::string::npos) text += ".0";
  return text;
}

// A scalar as JSON text.
std::string scalar_json(const json::value& v) {
  if (v.is_double()) return number_text(v.get_double());
  return json::serialize(v);
}

std::string scalar_text(const json::value& v) {
  if (v.is_string()) return std::string(v.get_string());
  if (v.is_null()) return "-";
  return scalar_json(v);
}

void pad_to(std::string& line, std::size_t width, std::size_t current) {
  if (current < width) line.append(width - current, ' ');
}

void write_pretty(const json::value& value, int depth, std::string& out) {
  const std::string indent(static_cast<std::size_t>(depth + 1) * 2, ' ');
  const std::string closing_indent(static_cast<std::size_t>(depth) * 2, ' ');
  if (value.is_object()) {
    const json::object& object = value.get_object();
    if (object.empty()) {
      out += "{}";
      return;
    }
    out += "{\n";
    bool first = true;
    for (const auto& member : object) {
      if (!first) out += ",\n";
      first = false;
      out += indent;
      out += json::serialize(json::string_view(member.key()));
      out += ": ";
      write_pretty(member.value(), depth + 1, out);
    }
    out += "\n" + closing_indent + "}";
  } else if (value.is_array()) {
    const json::array& array = value.get_array();
    if (array.empty()) {
      out += "[]";
      return;
    }
    out += "[\n";
    bool first = true;
    for (const auto& element : array) {
      if (!first) out += ",\n";
      first = false;
      out += indent;
      write_pretty(element, depth + 1, out);
    }
    out += "\n" + closing_indent + "]";
  } else {
    out += scalar_json(value);
  }
}

}  // namespace

Result<OutputFormat> parse_output_format(std::string_view text) {
  if (text == "table") return OutputFormat::kTable;
  if (text == "json") return OutputFormat::kJson;
  return Status::invalid_argument("unknown output format '" + std::string(text) + "': use table or json");
}

const json::value* find_path(const json::value& root, std::string_view dotted_path) {
  const json::value* current = &root;
  while (!dotted_path.empty()) {
    const std::size_t dot = dotted_path.find('.');
    const std::string_view key = dotted_path.substr(0, dot);
    const json::object* object = current->if_object();
    if (object == nullptr) return nullptr;
    current = object->if_contains(key);
    if (current == nullptr) return nullptr;
    dotted_path = dot == std::string_view::npos ? std::string_view() : dotted_path.substr(dot + 1);
  }
  return current;
}

std::string cell_text(const json::value* value) {
  if (value == nullptr) return "-";
  if (const json::array* array = value->if_array()) {
    if (std::all_of(array->begin(), array->end(), is_scalar)) {
      if (array->empty()) return "-";
      std::string joined;
      for (const auto& element : *array) {
        if (!joined.empty()) joined += ',';
        joined += scalar_text(element);
      }
      return sanitize(joined);
    }
    return sanitize(json::serialize(*value));
  }
  if (value->is_object()) return sanitize(json::serialize(*value));
  return sanitize(scalar_text(*value));
}

std::string printable(std::string_view text) { return sanitize(text); }

std::size_t display_width(std::string_view utf8) {
  return static_cast<std::size_t>(
      std::count_if(utf8.begin(), utf8.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; }));
}

std::string render_table(const std::vector<Column>& columns, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths(columns.size(), 0);
  for (std::size_t i = 0; i < columns.size(); ++i) widths[i] = display_width(columns[i].header);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < columns.size() && i < row.size(); ++i) {
      widths[i] = std::max(widths[i], display_width(row[i]));
    }
  }
  auto render_line = [&](auto cell_at) {
    std::string line;
    for (std::size_t i = 0; i < columns.size(); ++i) {
      const std::string_view cell = cell_at(i);
      const std::size_t width = display_width(cell);
      const bool last = i + 1 == columns.size();
      if (i > 0) line += "  ";
      if (columns[i].align == Align::kRight) pad_to(line, widths[i], width);
      line += cell;
      if (columns[i].align == Align::kLeft && !last) pad_to(line, widths[i], width);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    return line + "\n";
  };
  std::string out = render_line([&](std::size_t i) -> std::string_view { return columns[i].header; });
  for (const auto& row : rows) {
    out += render_line([&](std::size_t i) -> std::string_view { return i < row.size() ? std::string_view(row[i]) : std::string_view(); });
  }
  return out;
}

std::string render_list(const std::vector<Column>& columns, const json::array& items) {
  std::vector<std::vector<std::string>> rows;
  rows.reserve(items.size());
  for (const auto& item : items) {
    std::vector<std::string> row;
    row.reserve(columns.size());
    for (const auto& column : columns) row.push_back(cell_text(find_path(item, column.path)));
    rows.push_back(std::move(row));
  }
  return render_table(columns, rows);
}

std::string render_record(const std::vector<Column>& columns, const json::value& object) {
  std::size_t width = 0;
  for (const auto& column : columns) width = std::max(width, display_width(column.header));
  std::string out;
  for (const auto& column : columns) {
    std::string line = column.header;
    pad_to(line, width + 2, display_width(column.header));
    line += cell_text(find_path(object, column.path));
    out += line + "\n";
  }
  return out;
}

std::string pretty_json(const json::value& value) {
  std::string out;
  write_pretty(value, 0, out);
  out += '\n';
  return out;
}

}  // namespace headroom::cli
