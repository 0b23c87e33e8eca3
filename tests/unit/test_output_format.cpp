// --format: json, table, templates of {{.Field}} (podman's spelling), bad fields named.
#include <gtest/gtest.h>

#include "fcvm/cli/format.hpp"

using namespace fcvm;
using namespace fcvm::cli;

TEST(OutputFormat, Kinds) {
  const std::vector<std::string> fields = {"Name", "ID", "Status"};
  EXPECT_EQ(parse_output_format("", fields)->kind, OutputFormat::Kind::kTable);
  EXPECT_EQ(parse_output_format("table", fields)->kind, OutputFormat::Kind::kTable);
  EXPECT_EQ(parse_output_format("json", fields)->kind, OutputFormat::Kind::kJson);
  auto t = parse_output_format("{{.Name}}\\t{{ .ID }}", fields);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind, OutputFormat::Kind::kTemplate);
  EXPECT_FALSE(t->header);
  EXPECT_EQ(
      render_row(t->row_template, [](const std::string& f) { return f == "Name" ? "web" : "abc"; }),
      "web\tabc");
  auto h = parse_output_format("table {{.Name}} {{.Status}}", fields);
  ASSERT_TRUE(h);
  EXPECT_TRUE(h->header);
  EXPECT_EQ(render_header(h->row_template), "NAME STATUS");
}

TEST(OutputFormat, BadTemplatesNameTheProblem) {
  const std::vector<std::string> fields = {"Name"};
  auto unknown = parse_output_format("{{.Colour}}", fields);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message().find(".Colour"), std::string::npos);
  EXPECT_FALSE(parse_output_format("yaml", fields));
  EXPECT_FALSE(parse_output_format("{{.Name}} {{Name}}", fields));
  EXPECT_FALSE(parse_output_format("{{.Name", fields));
}
