#include "fcvm/cli/format.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <regex>

namespace fcvm::cli {
namespace {

const std::regex& placeholder() {
  static const std::regex re(R"(\{\{\s*\.([A-Za-z][A-Za-z0-9]*)\s*\}\})");
  return re;
}

std::string unescape(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && (text[i + 1] == 't' || text[i + 1] == 'n')) {
      out += text[i + 1] == 't' ? '\t' : '\n';
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

template <class Fn>
std::string substitute(const std::string& tmpl, const Fn& fn) {
  std::string out;
  auto begin = std::sregex_iterator(tmpl.begin(), tmpl.end(), placeholder());
  size_t at = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    out += tmpl.substr(at, static_cast<size_t>(it->position()) - at);
    out += fn((*it)[1].str());
    at = static_cast<size_t>(it->position() + it->length());
  }
  return out + tmpl.substr(at);
}

}  // namespace

Result<OutputFormat> parse_output_format(const std::string& text,
                                         const std::vector<std::string>& fields) {
  OutputFormat f;
  if (text.empty() || text == "table") return f;
  if (text == "json") {
    f.kind = OutputFormat::Kind::kJson;
    return f;
  }
  std::string tmpl = text;
  if (tmpl.rfind("table ", 0) == 0) {
    f.header = true;
    tmpl = tmpl.substr(6);
  }
  tmpl = unescape(tmpl);
  size_t placeholders = 0;
  for (auto it = std::sregex_iterator(tmpl.begin(), tmpl.end(), placeholder());
       it != std::sregex_iterator(); ++it) {
    ++placeholders;
    auto name = (*it)[1].str();
    if (std::find(fields.begin(), fields.end(), name) == fields.end()) {
      std::string known;
      for (const auto& k : fields) known += (known.empty() ? "" : ", ") + k;
      return fail(
          ErrorCode::kInvalidInput,
          fmt::format("invalid --format \"{}\": no field .{} (fields: {})", text, name, known));
    }
  }
  // Every "{{" must open a placeholder: a malformed one would print as it is.
  size_t opened = 0;
  for (auto at = tmpl.find("{{"); at != std::string::npos; at = tmpl.find("{{", at + 2)) ++opened;
  if (placeholders == 0 || opened != placeholders) {
    return fail(ErrorCode::kInvalidInput,
                fmt::format("invalid --format \"{}\": expected json, table, or a template of "
                            "{{{{.Field}}}} placeholders",
                            text));
  }
  f.kind = OutputFormat::Kind::kTemplate;
  f.row_template = tmpl;
  return f;
}

std::string render_row(const std::string& row_template,
                       const std::function<std::string(const std::string&)>& value) {
  return substitute(row_template, value);
}

std::string render_header(const std::string& row_template) {
  return substitute(row_template, [](const std::string& name) {
    std::string upper;
    for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return upper;
  });
}

}  // namespace fcvm::cli
