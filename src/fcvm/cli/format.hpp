#pragma once
// --format as podman reads it: "json", "table", or a template of {{.Field}} placeholders
// ("table " before a template adds a header row of the field names). Escapes \t and \n in the
// template become tabs and newlines.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "fcvm/util/result.hpp"

namespace fcvm::cli {

struct OutputFormat {
  enum class Kind { kTable, kJson, kTemplate } kind = Kind::kTable;
  std::string row_template{};  // kTemplate
  bool header = false;         // "table TEMPLATE"
};

// Checks the placeholders against the fields a command knows (kInvalidInput naming the bad one).
Result<OutputFormat> parse_output_format(const std::string& text,
                                         const std::vector<std::string>& fields);

// One row of a template: each {{.Field}} replaced by value(Field).
std::string render_row(const std::string& row_template,
                       const std::function<std::string(const std::string&)>& value);
// The header row of a template: each {{.Field}} replaced by the field's name in capitals.
std::string render_header(const std::string& row_template);

}  // namespace fcvm::cli
